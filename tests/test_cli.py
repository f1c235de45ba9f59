import json

import pytest

from prunekit import config
from prunekit.cli import main
from tests.helpers import tiny


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(config.dump(tiny(**{"prune.rounds": 1, "train.epochs": 1})))
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_run_prints_table_and_report_path(cfg_file, tmp_path, capsys):
    assert main(["run", str(cfg_file), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "| round |" in out and str(tmp_path / "r" / "report.md") in out


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["prune.sparsty=0.5"], "did you mean prune.sparsity"),
        (["prune.sparsity=1.5"], "must be in [0, 1)"),
        (["model.name=resnet_20"], "did you mean resnet20"),
        (["prune.method=lottery"], "unknown method 'lottery'"),
        (["prune.criterion=magnitud"], "did you mean magnitude"),
        (["data.name=cifar10", "data.root=/nonexistent"], "CIFAR-10"),
        (["prune.ignore=[fc9]"], "match no prunable tensor"),
    ],
)
def test_bad_input_exits_2_with_one_line(cfg_file, tmp_path, capsys, overrides, fragment):
    args = ["run", str(cfg_file), "--out", str(tmp_path / "r")]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 2
    assert fragment in one_line_error(capsys)


def test_bad_input_computes_nothing(cfg_file, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", str(cfg_file), "--out", str(out), "--set", "prune.method=lottery"]) == 2
    assert not (out / "checkpoints").exists()


def test_changed_config_on_existing_run_is_refused_and_nothing_is_lost(cfg_file, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", str(cfg_file), "--out", str(out)]) == 0
    before = (out / "summary.json").read_text()
    capsys.readouterr()
    assert main(["run", str(cfg_file), "--out", str(out), "--set", "train.lr=0.5"]) == 2
    assert "differs in: train.lr" in one_line_error(capsys)
    assert (out / "summary.json").read_text() == before


def test_missing_config_and_unknown_command(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in one_line_error(capsys)
    assert main(["frobnicate"]) == 2
    one_line_error(capsys)


def test_inspect_run_json_and_report(cfg_file, tmp_path, capsys):
    out = tmp_path / "r"
    main(["run", str(cfg_file), "--out", str(out)])
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sparsity"] == pytest.approx(0.2, abs=1e-4)
    assert [layer["name"] for layer in info["layers"]] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").is_file()


def test_export_sparse_round_trip_through_cli(cfg_file, tmp_path, capsys):
    out = tmp_path / "r"
    main(["run", str(cfg_file), "--out", str(out)])
    target = tmp_path / "m.safetensors"
    capsys.readouterr()
    assert main(["export", str(out), "--round", "1", "--format", "sparse", "--out", str(target)]) == 0
    assert main(["export", str(out), "--round", "7", "--format", "sparse", "--out", str(target)]) == 2
    assert "no finished round 7" in one_line_error(capsys)
