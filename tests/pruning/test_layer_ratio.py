"""Per-layer ratios (prune.layer_ratio) in unstructured allocation: named tensors get exactly their sparsity."""

import pytest
import torch

from prunekit.pruning.masks import dense_masks
from prunekit.pruning.step import fixed_by_ratios
from prunekit.runner import experiment
from tests.helpers import tiny


def test_named_layers_get_their_ratio_and_the_rest_meet_the_target(tmp_path):
    cfg = tiny(
        **{
            "prune.method": "oneshot",
            "prune.rounds": None,
            "prune.sparsity": 0.6,
            "prune.retrain_epochs": 0,
            "prune.layer_ratio": {"fc1": 0.5, "fc3.weight": 0.0},
        }
    )
    summary = experiment.run(cfg, tmp_path, log=lambda _: None)
    layers = {lay["name"]: lay for lay in summary["layers"]}
    assert layers["fc1.weight"]["sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert layers["fc3.weight"]["sparsity"] == 0.0
    assert summary["rounds"][1]["sparsity"] == pytest.approx(0.6, abs=1e-5)


def test_fixed_layers_beyond_the_target_leave_the_others_empty_not_full():
    from prunekit.pruning.allocation import prune

    masks = {"a": torch.ones(10, dtype=torch.bool), "b": torch.ones(10, dtype=torch.bool)}
    scores = {"a": torch.rand(10), "b": torch.rand(10)}
    with pytest.warns(UserWarning, match="layer collapse"):
        new = prune(scores, masks, 0.8, fixed={"a": 0.5})
    assert int(new["a"].sum()) == 5 and int(new["b"].sum()) == 0


def test_when_every_layer_is_named_the_ratios_set_the_total():
    masks = {"a.weight": torch.ones(10, dtype=torch.bool), "b.weight": torch.ones(30, dtype=torch.bool)}
    sparsity, fixed = fixed_by_ratios({"a": 0.5, "b.weight": 0.1}, masks, 0.9)
    assert fixed == {"a.weight": 0.5, "b.weight": 0.9}
    assert sparsity == pytest.approx((5 + 3) / 40)


def test_unknown_layer_is_a_user_error():
    from prunekit.common.errors import UserError

    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(UserError, match="names no prunable tensor"):
        fixed_by_ratios({"fc9": 0.5}, dense_masks(model, ["0.weight"]), 0.5)
