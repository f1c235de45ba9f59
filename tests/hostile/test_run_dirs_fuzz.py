"""Damaged run directories (summary.json, config.yaml, checkpoints) through `report`, `inspect` and `export`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prunekit.runner.experiment import run
from tests.helpers import tiny
from tests.hostile.harness import cli, count, fixed, set_at
from tests.hostile.model_files import join, split
from tests.hostile.test_model_files_fuzz import json_values

SUMMARY_KEYS = ["name", "model", "method", "complete", "final_accuracy", "total_epochs", "wall_seconds", "arch"]
ROUND_KEYS = ["round", "sparsity", "test_accuracy", "epochs", "params", "flops"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    run(tiny(**{"train.epochs": 1, "prune.rounds": 1}), out, log=lambda _: None)
    return out


def _copy(run_dir: Path, root: Path) -> Path:
    target = root / "run"
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("*.png", "report.*"))
    return target


def _readers(target: Path, root: Path, with_report: bool = True) -> None:
    if with_report:
        cli(["report", target, "--out", root / "report"])
    cli(["inspect", target])
    cli(["export", target, "--format", "sparse", "--out", root / "m.safetensors"])


@st.composite
def summary_edits(draw: st.DrawFn) -> list[tuple[tuple, object]]:
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "round", "layer", "history"]))
        value = draw(json_values)
        if where == "top":
            edits.append(((draw(st.sampled_from(SUMMARY_KEYS)),), value))
        elif where == "round":
            edits.append((("rounds", draw(st.integers(0, 1)), draw(st.sampled_from(ROUND_KEYS))), value))
        elif where == "layer":
            edits.append((("layers", 0, draw(st.sampled_from(["name", "shape", "sparsity", "numel"]))), value))
        else:
            edits.append((("history", "0"), value))
    return edits


@fixed(12)
@given(edits=summary_edits())
def test_damaged_summary_fields(run_dir, tmp_path_factory, edits) -> None:
    count("summary.json fields")
    root = tmp_path_factory.mktemp("summary")
    target = _copy(run_dir, root)
    summary = json.loads((target / "summary.json").read_text())
    for path, value in edits:
        set_at(summary, path, value)
    (target / "summary.json").write_text(json.dumps(summary))
    _readers(target, root)


@fixed(25)
@given(
    name=st.sampled_from(["summary.json", "config.yaml"]),
    cut=st.one_of(st.none(), st.integers(0, 5000)),
    flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=4),
)
def test_damaged_bytes_of_summary_and_config(run_dir, tmp_path_factory, name, cut, flips) -> None:
    count("summary.json/config.yaml bytes")
    root = tmp_path_factory.mktemp("bytes")
    target = _copy(run_dir, root)
    data = bytearray((target / name).read_bytes())
    for pos, byte in flips:
        data[pos % len(data)] = byte
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    (target / name).write_bytes(bytes(data))
    _readers(target, root, with_report=bool(flips) or cut is not None)


@fixed(30)
@given(
    key=st.sampled_from(["record", "optimizer_numbers", "__metadata__"]),
    value=json_values,
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
)
def test_damaged_checkpoint(run_dir, tmp_path_factory, key, value, flips) -> None:
    count("checkpoints")
    root = tmp_path_factory.mktemp("ckpt")
    target = _copy(run_dir, root)
    path = target / "checkpoints" / "round_1.safetensors"
    header, body = split(path.read_bytes())
    if key == "__metadata__":
        header[key] = value
    elif isinstance(value, dict) and key == "record":
        header["__metadata__"][key] = json.dumps({**json.loads(header["__metadata__"][key]), **value})
    else:
        header["__metadata__"][key] = json.dumps(value) if not isinstance(value, str) else value
    data = bytearray(join(header, body))
    for pos, byte in flips:
        data[pos % len(data)] = byte
    path.write_bytes(bytes(data))
    _readers(target, root, with_report=False)


def test_a_very_long_run_name_is_clipped_in_the_report(run_dir, tmp_path) -> None:
    target = _copy(run_dir, tmp_path)
    summary = json.loads((target / "summary.json").read_text())
    summary["name"] = "x" * 1_000_000
    (target / "summary.json").write_text(json.dumps(summary))
    rc, _ = cli(["report", target, "--out", tmp_path / "report"])
    assert rc == 0
    assert "x" * 60 not in (tmp_path / "report" / "report.md").read_text()


def test_a_file_as_report_out_and_as_run_out(run_dir, tmp_path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, err = cli(["report", run_dir, "--out", afile])
    assert rc == 2 and "afile" in err and afile.read_text() == "x"
    config = tmp_path / "c.yaml"
    config.write_text("name: c\ndata: {name: synthetic, shape: [1, 8, 8]}\ntrain: {epochs: 0}\n")
    rc, err = cli(["run", config, "--out", afile])
    assert rc == 2 and "afile" in err and afile.read_text() == "x"
