"""Layer-by-layer channel pruning (method sequential, ThiNet as Luo et al. 2017 run it): one group per round, in
network order, each scored on the network whose lower layers are already pruned and fine-tuned."""

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.inspection import round_model
from prunekit.pruning.methods import METHODS
from prunekit.pruning.structured import output_widths, thinet
from prunekit.runner import experiment
from tests.helpers import tiny

LENET5 = {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}  # its prunable groups; the output layer fc3 keeps 10


def cfg(**overrides):
    base = {
        "model.name": "lenet5",
        "data.shape": [1, 16, 16],
        "prune.structure": "channel",
        "prune.method": "sequential",
        "prune.criterion": "thinet",
        "prune.sparsity": 0.5,
        "prune.layer_epochs": 1,
        "prune.retrain_epochs": 2,
        "prune.round_to": 1,  # exact halves
    }
    return tiny(**{**base, **overrides})


def test_plan_prunes_one_group_per_round_then_retrains():
    plans = METHODS.get("sequential")(cfg(**{"train.epochs": 3}), LENET5)
    assert [(p.index, p.base, p.layers, p.epochs, p.schedule) for p in plans] == [
        (0, None, None, 3, "train"),
        (1, 0, ("conv1",), 1, "finetune"),
        (2, 1, ("conv2",), 1, "finetune"),
        (3, 2, ("fc1",), 1, "finetune"),
        (4, 3, ("fc2",), 2, "finetune"),
    ]
    assert all(p.sparsity == 0.5 for p in plans[1:])
    no_tuning = METHODS.get("sequential")(cfg(**{"prune.layer_epochs": 0}), LENET5)
    assert [p.epochs for p in no_tuning[1:]] == [0, 0, 0, 2]
    replay = METHODS.get("sequential")(cfg(**{"prune.rewind": "lr"}), LENET5)[-1]
    assert (replay.schedule, replay.start_epoch, replay.squeeze) == ("train", 0, 1.0)
    with pytest.raises(UserError, match="not a list"):
        METHODS.get("sequential")(cfg(**{"prune.sparsity": [0.3, 0.5]}), LENET5)


def test_each_layer_is_scored_on_the_network_pruned_below_it(tmp_path, monkeypatch):
    seen = []
    original = thinet.sample_contributions

    def spy(ctx):
        seen.append(([g.name for g in ctx.groups], output_widths(ctx.model)))
        return original(ctx)

    monkeypatch.setattr(thinet, "sample_contributions", spy)
    summary = experiment.run(cfg(), tmp_path, log=lambda _: None)
    halves = {"conv1": 3, "conv2": 8, "fc1": 60, "fc2": 42}
    order = list(LENET5)
    assert [groups for groups, _ in seen] == [[name] for name in order]
    for k, (_, widths) in enumerate(seen):
        for j, name in enumerate(order):  # lower groups already half as wide, this one and the ones above whole
            assert widths[name] == (halves[name] if j < k else LENET5[name]), (k, name)
    for k in range(1, 5):
        model, _, _ = round_model(tmp_path, k)
        widths = output_widths(model)
        assert [widths[n] for n in order] == [halves[n] if j < k else LENET5[n] for j, n in enumerate(order)]
    sparsities = [r["channel_fraction"] for r in summary["rounds"]]
    assert sparsities == sorted(sparsities) and sparsities[-1] == pytest.approx(0.5, abs=0.01)
    assert [r["epochs"] for r in summary["rounds"]] == [2, 1, 1, 1, 2]


def test_round_k_starts_from_the_fine_tuned_round_before(tmp_path, monkeypatch):
    weights = {}
    original = experiment.Run._prune

    def spy(self, plan, masks, target=None):
        weights[plan.index] = {k: v.clone() for k, v in self.model.state_dict().items()}
        return original(self, plan, masks, target)

    monkeypatch.setattr(experiment.Run, "_prune", spy)
    experiment.run(cfg(), tmp_path, log=lambda _: None)
    for k in (2, 3):
        model, _, _ = round_model(tmp_path, k - 1)
        for name, value in model.state_dict().items():
            assert torch.equal(weights[k][name], value), (k, name)


def test_sequential_is_for_channels():
    with pytest.raises(UserError, match="prune.structure: channel"):
        experiment.Run(cfg(**{"prune.structure": "unstructured"}), "unused", log=lambda _: None)
