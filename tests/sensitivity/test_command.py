"""`prunekit sensitivity` from a config and from a run, and its ratios file through `prune.ratios_file`."""

import json

import pytest

from prunekit import config
from prunekit.cli import main
from prunekit.common.errors import UserError
from prunekit.runner import experiment
from tests.helpers import tiny


def lenet5(**overrides):
    base = {
        "model.name": "lenet5",
        "data.shape": [1, 16, 16],
        "data.val_size": 64,
        "train.epochs": 1,
        "prune.method": "oneshot",
        "prune.structure": "channel",
        "prune.criterion": "l1_filter",
        "prune.sparsity": 0.5,
        "prune.rounds": None,
        "prune.retrain_epochs": 1,
    }
    return tiny(**{**base, **overrides})


def test_sensitivity_from_a_config_then_its_ratios_in_a_run(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(config.dump(lenet5()))
    out = tmp_path / "sens"
    assert (
        main(["sensitivity", str(cfg_file), "--out", str(out), "--budget", "flops=0.5", "--ratios", "0.25,0.5,0.75"])
        == 0
    )
    for name in (
        "sensitivity.md",
        "sensitivity.csv",
        "sensitivity.json",
        "sensitivity.png",
        "ratios.json",
        "uniform_ratios.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "dense" / "summary.json").is_file()  # the dense network was trained by the runner
    ratios = json.loads((out / "ratios.json").read_text())
    assert ratios["structure"] == "channel" and set(ratios["ratios"]) == {"conv1", "conv2", "fc1", "fc2"}
    assert ratios["budget"]["met"] <= 0.5
    cfg = lenet5(**{"prune.ratios_file": str(out / "ratios.json"), "prune.retrain_epochs": 0})
    assert cfg.prune.layer_ratio == pytest.approx(ratios["ratios"])
    summary = experiment.run(cfg, tmp_path / "run", log=lambda _: None)
    dense, pruned = summary["rounds"][0]["flops"], summary["rounds"][1]["flops"]
    assert pruned / dense == pytest.approx(ratios["budget"]["met"], abs=1e-6)


def test_sensitivity_from_a_run_directory_with_a_tolerance(tmp_path):
    experiment.run(
        lenet5(**{"prune.method": "none", "prune.structure": "unstructured", "prune.criterion": "magnitude"}),
        tmp_path / "run",
        log=lambda _: None,
    )
    out = tmp_path / "sens"
    args = ["sensitivity", str(tmp_path / "run"), "--out", str(out), "--tolerance", "0.02", "--ratios", "0.5,0.9"]
    assert main(args) == 0
    ratios = json.loads((out / "ratios.json").read_text())
    assert ratios["structure"] == "unstructured" and ratios["tolerance"] == 0.02
    assert set(ratios["ratios"]) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"}


@pytest.mark.filterwarnings("ignore:str. no weight decay")
def test_untrained_round_zero_is_refused(tmp_path, capsys):
    experiment.run(
        tiny(**{"prune.method": "str", "prune.rounds": None, "train.epochs": 1}), tmp_path / "run", log=lambda _: None
    )
    assert main(["sensitivity", str(tmp_path / "run"), "--out", str(tmp_path / "s")]) == 2
    assert "untrained" in capsys.readouterr().err


def test_ratios_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ratios": {"conv1": 1.5}}))
    with pytest.raises(UserError, match="in \\[0, 1\\)"):
        lenet5(**{"prune.ratios_file": str(bad)})
    with pytest.raises(UserError, match="no such file"):
        lenet5(**{"prune.ratios_file": str(tmp_path / "missing.json")})
    with pytest.raises(UserError, match="oneshot and at_init"):
        lenet5(**{"prune.method": "imp", "prune.layer_ratio": {"conv1": 0.5}})
