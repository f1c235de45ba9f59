import pytest
import torch

from prunekit import export
from prunekit.common.errors import UserError
from prunekit.inspection import export_file, round_model
from prunekit.runner import experiment
from tests.helpers import run_interrupted, tiny


def channel_cfg(**overrides):
    base = {
        "model.name": "lenet5",
        "data.shape": [1, 16, 16],
        "prune.structure": "channel",
        "prune.criterion": "l1_filter",
        "prune.rewind": "lr",
        "prune.rounds": 2,
        "prune.rate": 0.3,
    }
    return tiny(**{**base, **overrides})


def run(cfg, out):
    return experiment.run(cfg, out, log=lambda _: None)


def test_channel_imp_thins_the_network_each_round(tmp_path):
    summary = run(channel_cfg(), tmp_path)
    params = [r["params"] for r in summary["rounds"]]
    assert params[0] > params[1] > params[2]
    assert [r["sparsity"] for r in summary["rounds"]][0] == 0.0
    assert summary["rounds"][2]["channel_fraction"] == pytest.approx(0.51, abs=0.05)
    assert all(r["latency_ms"] > 0 for r in summary["rounds"])
    assert summary["structure"] == "channel"
    assert summary["layers"][0]["shape"][0] < summary["layers"][0]["original_shape"][0]
    model, _, _ = round_model(tmp_path, 2)
    assert sum(p.numel() for p in model.parameters()) == params[2]


def test_channel_run_resumes_identically(tmp_path, monkeypatch):
    cfg = channel_cfg(**{"train.epochs": 3})
    run(cfg, tmp_path / "straight")
    run_interrupted(cfg, tmp_path / "resumed", 4, monkeypatch)
    a, _, ra = round_model(tmp_path / "straight", 2)
    b, _, rb = round_model(tmp_path / "resumed", 2)
    assert ra["test_accuracy"] == rb["test_accuracy"]
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_compact_export_of_a_round_loads_and_matches(tmp_path):
    run(channel_cfg(**{"prune.rounds": 1}), tmp_path / "run")
    model, _, _ = round_model(tmp_path / "run", 1)
    for fmt in ("compact", "dense"):
        path = export_file(tmp_path / "run", 1, fmt, tmp_path / f"{fmt}.safetensors")
        loaded = export.load(path)
        x = torch.randn(3, 1, 16, 16)
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(UserError, match="channel-pruned"):
        export_file(tmp_path / "run", 1, "sparse", tmp_path / "s.safetensors")


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"prune.criterion": "magnitude"}, "unknown channel criterion"),
        ({"prune.rewind": "init"}, "prune.rewind"),
        ({"prune.method": "at_init"}, "oneshot, imp, gradual, amc or sequential"),
    ],
)
def test_channel_config_errors(tmp_path, overrides, fragment):
    with pytest.raises(UserError, match=fragment):
        run(channel_cfg(**overrides), tmp_path)


def gradual_cfg(**overrides):
    base = {
        "prune.method": "gradual",
        "prune.sparsity": 0.5,
        "train.epochs": 1,
        "prune.retrain_epochs": 3,
        "prune.frequency": 2,
        "prune.end_epoch": 2.0,
    }
    return channel_cfg(**{**base, **overrides})


def test_gradual_channel_pruning_thins_while_training(tmp_path):
    summary = run(gradual_cfg(), tmp_path)
    dense, pruned = summary["rounds"]
    assert pruned["channel_fraction"] == pytest.approx(0.5, abs=0.03)
    assert pruned["params"] < 0.5 * dense["params"]
    model, _, _ = round_model(tmp_path, 1)
    x = torch.randn(2, 1, 16, 16)
    assert model(x).shape == (2, 4)


def test_gradual_channel_run_resumes_identically(tmp_path, monkeypatch):
    cfg = gradual_cfg()
    run(cfg, tmp_path / "straight")
    run_interrupted(cfg, tmp_path / "resumed", 2, monkeypatch)  # round 0, then round 1 after its first epoch
    a, _, ra = round_model(tmp_path / "straight", 1)
    b, _, rb = round_model(tmp_path / "resumed", 1)
    assert ra["test_accuracy"] == rb["test_accuracy"] and ra["params"] == rb["params"]
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_gradual_channel_pruning_with_a_data_driven_criterion(tmp_path):
    """Taylor scores need gradients, and gradual pruning calls them from the optimizer's (no-grad) step hook."""
    cfg = tiny(
        **{
            "prune.structure": "channel",
            "prune.method": "gradual",
            "prune.criterion": "taylor",
            "prune.sparsity": 0.5,
            "prune.frequency": 3,
        }
    )
    summary = run(cfg, tmp_path)
    assert summary["final_channel_fraction"] == pytest.approx(0.5, abs=0.02)
