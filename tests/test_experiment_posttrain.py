"""Post-training criteria and N:M patterns through the runner: `prune.criterion: wanda | sparsegpt` and
`prune.pattern` in a oneshot config with no retraining, the pruning time recorded, and the config's refusals."""

from __future__ import annotations

import pytest

from prunekit import config
from prunekit.common.errors import UserError
from prunekit.pruning.patterns import violations
from prunekit.runner import experiment
from prunekit.store import checkpoint
from tests.helpers import tiny


def oneshot(**overrides):
    prune = {"prune.method": "oneshot", "prune.sparsity": 0.5, "prune.retrain_epochs": 0, "train.epochs": 1}
    return tiny(**{**prune, **overrides})


@pytest.mark.parametrize(("criterion", "pattern"), [("wanda", "unstructured"), ("sparsegpt", "2:4")])
def test_oneshot_posttrain_run_prunes_every_layer_to_the_target(tmp_path, criterion, pattern):
    cfg = oneshot(**{"prune.criterion": criterion, "prune.pattern": pattern})
    summary = experiment.run(cfg, tmp_path, log=lambda _: None)
    pruned = summary["rounds"][1]
    assert pruned["sparsity"] == pytest.approx(0.5)
    assert pruned["prune_seconds"] is not None and pruned["prune_seconds"] >= 0
    assert summary["rounds"][0]["prune_seconds"] is None
    assert all(layer["sparsity"] == pytest.approx(0.5, abs=1e-3) for layer in summary["layers"])  # per layer
    _, masks, _, _ = checkpoint.load(tmp_path / "checkpoints" / "round_1.safetensors")
    assert violations(masks, pattern) == []


def test_config_refuses_what_a_pattern_cannot_do():
    with pytest.raises(UserError, match="set prune.sparsity to 0.5"):
        config.from_dict({"prune": {"method": "oneshot", "pattern": "2:4", "sparsity": 0.9}})
    with pytest.raises(UserError, match="prune.pattern"):
        config.from_dict({"prune": {"method": "imp", "pattern": "2:4", "sparsity": 0.5}})
    with pytest.raises(UserError, match="prune.pattern"):
        config.from_dict({"prune": {"method": "oneshot", "pattern": "4:2", "sparsity": 0.5}})
    assert config.from_dict({}).prune.pattern == "unstructured"


def test_unknown_criterion_lists_post_training_ones_too(tmp_path):
    with pytest.raises(UserError, match="did you mean wanda"):
        experiment.Run(oneshot(**{"prune.criterion": "wandaa"}), tmp_path)


def test_runner_trains_the_gpt_on_stdlib_bytes_and_reports_perplexity(tmp_path):
    cfg = config.from_dict(
        {
            "model": {"name": "gpt"},
            "data": {"name": "pystdlib", "seq_len": 16, "max_bytes": 4000},
            "train": {"epochs": 1, "batch_size": 16, "lr": 0.002},
            "prune": {
                "method": "oneshot",
                "criterion": "wanda",
                "pattern": "2:4",
                "sparsity": 0.5,
                "retrain_epochs": 0,
            },
        }
    )
    summary = experiment.run(cfg, tmp_path, log=lambda _: None)
    assert summary["metric"] == {"name": "perplexity", "higher_is_better": False}
    dense, pruned = summary["rounds"]
    assert 1.0 < dense["test_metric"] < 256.0 and pruned["test_metric"] > 1.0  # better than uniform over bytes
    _, masks, _, _ = checkpoint.load(tmp_path / "checkpoints" / "round_1.safetensors")
    assert len(masks) == 24 and violations(masks, "2:4") == []
