"""AMC (He et al. 2018, "AMC: AutoML for Model Compression"): a DDPG agent learns per-layer pruning ratios.

    result = amc_search(model, evaluate, budget={"flops": 0.5}, example_input=x)   # any nn.Module
    prune_channels(model, 0.0, ratios=result.ratios, example_input=x)              # apply the best policy
    result.log["search_seconds"], result.log["best"]

agent.py is the DDPG agent, problems.py what is searched (channel groups or weight tensors, for any module),
env.py the episode (state, budget clip, reward), search.py the loop and this API, runner.py the glue that lets the
experiment runner ask for ratios (`prune.method: amc`).
"""

from prunekit.pruning.amc.agent import AgentConfig
from prunekit.pruning.amc.search import SearchResult, amc_search

__all__ = ["AgentConfig", "SearchResult", "amc_search"]
