"""Defaults agree between the config (CLI) and Python and follow the structure: a channel run without a criterion or
scope prunes as `prunekit.prune_channels(model, fraction)` does (l1_filter, layerwise), and method amc works
without a criterion."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit import config
from prunekit.inspection import round_model
from prunekit.runner import experiment
from prunekit.runner.checks import check_config
from tests.helpers import tiny


def test_criterion_and_scope_follow_the_structure():
    plain = config.from_dict({})
    assert (plain.prune.criterion, plain.prune.scope) == ("magnitude", "global")
    channel = config.from_dict({"prune": {"structure": "channel", "method": "amc", "budget": {"flops": 0.5}}})
    assert (channel.prune.criterion, channel.prune.scope) == ("l1_filter", "layerwise")
    check_config(channel)  # was: unknown channel criterion 'magnitude'
    moved = plain.replace(**{"prune.structure": "channel"})  # --set / Experiment(overrides=...) on a loaded config
    assert (moved.prune.criterion, moved.prune.scope) == ("l1_filter", "layerwise")
    kept = plain.replace(**{"prune.structure": "channel", "prune.scope": "global"})
    assert kept.prune.scope == "global"
    explicit = config.from_dict({"prune": {"structure": "channel", "criterion": "fpgm", "scope": "global"}})
    assert (explicit.prune.criterion, explicit.prune.scope) == ("fpgm", "global")


def test_a_channel_run_and_prune_channels_pick_the_same_channels(tmp_path):
    cfg = config.from_dict(
        {
            "model": {"name": "lenet5"},
            "data": {"name": "synthetic", "shape": [1, 16, 16], "classes": 4, "train_size": 128, "test_size": 32},
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.01},
            "prune": {"method": "oneshot", "structure": "channel", "sparsity": 0.5, "retrain_epochs": 0},
        }
    )
    experiment.run(cfg, tmp_path, log=lambda _: None)
    dense, _, _ = round_model(tmp_path, 0)
    pruned, _, _ = round_model(tmp_path, 1)
    prunekit.prune_channels(dense, 0.5)  # the Python defaults, on the same trained weights
    assert {k: v.shape for k, v in dense.state_dict().items()} == {k: v.shape for k, v in pruned.state_dict().items()}
    for name, value in dense.state_dict().items():
        assert torch.equal(value, pruned.state_dict()[name]), name
    widths = {n: m.out_channels for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert len(set(1 - w / o for w, o in zip(widths.values(), (6, 16), strict=True))) == 1  # layerwise: same share


@pytest.mark.parametrize("structure, criterion", [("channel", "l1_filter"), ("unstructured", "magnitude")])
def test_tiny_helper_keeps_working(structure, criterion):
    assert tiny(**{"prune.structure": structure}).prune.criterion == criterion
