"""AMC's search on a hand-written module and through the runner: budgets met, model untouched, deterministic."""

import copy
import json

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.pruning.amc import amc_search
from prunekit.pruning.flops import example_flops
from prunekit.pruning.structured import prune_channels
from prunekit.runner import experiment
from tests.helpers import tiny
from tests.sensitivity.test_sensitivity import agreement_with
from tests.structured.nets import TinyConv, example


def search(model, **kwargs):
    args = {"budget": {"flops": 0.5}, "episodes": 8, "warmup": 4, "example_input": example(), "seed": 0}
    return amc_search(model, agreement_with(copy.deepcopy(model)), **{**args, **kwargs})


def test_channel_search_meets_the_budget_and_its_accuracy_is_the_pruned_networks():
    model = TinyConv().eval()
    before = copy.deepcopy(model.state_dict())
    result = search(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    best = result.log["best"]
    assert best["cost_fraction"] <= 0.5 and len(result.log["history"]) == 8
    thin = copy.deepcopy(model)
    prune_channels(thin, 0.0, ratios=result.ratios, example_input=example())
    measured = example_flops(thin, example())[0] / example_flops(model, example())[0]
    assert measured == pytest.approx(best["flops_fraction"], abs=1e-6)
    assert agreement_with(copy.deepcopy(model))(thin) == pytest.approx(result.accuracy)
    for row in result.log["history"]:  # every episode, not just the best, met the budget
        assert row["cost_fraction"] <= 0.5


def test_fine_grained_search_meets_a_parameter_budget_and_restores_the_weights():
    model = TinyConv().eval()
    before = copy.deepcopy(model.state_dict())
    result = search(model, structure="unstructured", budget={"params": 0.6})
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert set(result.ratios) == {"conv1.weight", "conv2.weight"}
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in model.parameters())
    kept = total - sum(round(r * params[n].numel()) for n, r in result.ratios.items())
    assert kept <= 0.6 * total and result.log["best"]["cost_fraction"] <= 0.6


def seeded_net(seed=0):
    torch.manual_seed(seed)
    return TinyConv().eval()


def test_search_is_deterministic_and_the_seed_matters():
    a, b, c = search(seeded_net()), search(seeded_net()), search(seeded_net(), seed=1)
    assert a.log["history"] == b.log["history"]
    assert a.log["history"] != c.log["history"]


def test_accuracy_guaranteed_mode_needs_no_budget():
    import math

    model = TinyConv().eval()
    args = {"episodes": 8, "warmup": 4, "example_input": example(), "seed": 0, "reward": "error_log_flops"}
    result = amc_search(model, lambda m: 0.7, **args)  # error 0.3 whatever is pruned: the FLOPs decide
    assert result.log["budget"] is None and len({r["flops_fraction"] for r in result.log["history"]}) > 1
    dense = example_flops(model, example())[0]
    for row in result.log["history"]:  # every episode's reward is -error * log(FLOPs), from its own numbers
        flops = row["flops_fraction"] * dense
        assert row["reward"] == pytest.approx(-(1 - row["accuracy"]) * math.log(flops), abs=2e-6)


def test_bad_searches_are_user_errors():
    with pytest.raises(UserError, match="needs a budget"):
        search(TinyConv().eval(), budget=None)
    with pytest.raises(UserError, match="below what the smallest"):
        search(TinyConv().eval(), budget={"flops": 0.01})
    with pytest.raises(UserError, match="latency needs channel pruning"):
        search(TinyConv().eval(), structure="unstructured", budget={"latency": 0.5})


def amc_cfg(**overrides):
    base = {
        "model.name": "lenet5",
        "data.shape": [1, 16, 16],
        "data.val_size": 64,
        "train.epochs": 1,
        "prune.method": "amc",
        "prune.structure": "channel",
        "prune.criterion": "l1_filter",
        "prune.rounds": None,
        "prune.budget": {"flops": 0.5},
        "prune.episodes": 6,
        "prune.warmup_episodes": 3,
        "prune.retrain_epochs": 1,
    }
    return tiny(**{**base, **overrides})


def test_amc_through_the_runner_and_report(tmp_path, monkeypatch):
    summary = experiment.run(amc_cfg(), tmp_path / "run", log=lambda _: None)
    log = json.loads((tmp_path / "run" / "amc_search.json").read_text())
    dense, pruned = summary["rounds"][0]["flops"], summary["rounds"][1]["flops"]
    assert pruned / dense == pytest.approx(log["best"]["flops_fraction"], abs=1e-6)
    assert pruned <= 0.5 * dense and log["reward_examples"] == 64 and log["search_seconds"] > 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "AMC search" in report and (tmp_path / "run" / "amc_rewards.png").is_file()
    # a resumed pruned round reads its ratios back from the log instead of searching again
    (tmp_path / "run" / "checkpoints" / "round_1.safetensors").unlink()
    import prunekit.runner.amc as runner

    monkeypatch.setattr(runner, "amc_search", lambda *a, **k: pytest.fail("searched again"))
    again = experiment.run(amc_cfg(), tmp_path / "run", log=lambda _: None)
    assert again["rounds"][1]["flops"] == pruned


def test_fine_grained_amc_through_the_runner(tmp_path):
    cfg = amc_cfg(
        **{"prune.structure": "unstructured", "prune.criterion": "magnitude", "prune.budget": {"params": 0.3}}
    )
    summary = experiment.run(cfg, tmp_path / "run", log=lambda _: None)
    assert summary["rounds"][1]["params"] <= 0.3 * summary["rounds"][0]["params"] + 1
    assert summary["rounds"][1]["sparsity"] > 0.5


def test_latency_budget_uses_a_monotone_measured_table():
    from prunekit.pruning.amc.env import PruningEnv
    from prunekit.pruning.amc.problems import channel_problem
    from prunekit.pruning.structured.latency_costs import latency_costs

    model = TinyConv().eval()
    costs = latency_costs(model, example())
    full, half, small = costs.cost([8, 12]), costs.cost([4, 6]), costs.cost([2, 3])
    assert full >= half >= small > 0  # more channels are never predicted to be faster
    assert costs.cost([8, 6]) >= half and costs.cost([4, 12]) >= half
    target = (small + full) / 2  # tiny layers: most of the time is fixed overhead, so only a mild cut is possible
    problem = channel_problem(model, agreement_with(copy.deepcopy(model)), example())
    env = PruningEnv(problem, costs, target, 0.2, "error")
    for action in (0.2, 1.0, 0.6, 0.9):
        env.reset()
        done = False
        while not done:
            _, _, done, info = env.step(action)
        assert info["cost"] <= target
