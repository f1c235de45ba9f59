"""AMC as a method (He et al. 2018): train, search per-layer ratios with a DDPG agent, prune, fine-tune.

Round 0 trains the dense network. Round 1 asks for its per-layer ratios at prune time (`allocate="amc"`: the
runner hands the trained network to `prunekit.runner.amc`), prunes with the best policy (channels per group
with `prune.structure: channel`, weights per tensor otherwise) and retrains like one-shot pruning: fine-tuning at a
constant lr, or with `prune.rewind: lr` a replay of the training schedule squeezed into `prune.retrain_epochs`.
"""

from __future__ import annotations

from prunekit.config import Config
from prunekit.pruning.methods.plan import METHODS, RoundPlan, dense_round, retrain_epochs


@METHODS.register("amc")
def amc(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    epochs = retrain_epochs(cfg)
    replay = cfg.prune.rewind == "lr"
    squeeze = cfg.train.epochs / epochs if replay and epochs else 1.0
    pruned = RoundPlan(
        index=1,
        base=0,
        sparsity=0.0,  # the searched ratios set the sparsity
        allocate="amc",
        weights="keep",
        epochs=epochs,
        schedule="train" if replay else "finetune",
        squeeze=squeeze,
    )
    return [dense_round(cfg), pruned]
