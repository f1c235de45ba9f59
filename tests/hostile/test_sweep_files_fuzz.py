"""Sweep files (and their base configs) read through the bounded YAML reader configs use; sweep directories reread.

`prunekit.sweep.spec.load` expands and validates without running anything, so the property calls it directly with
the harness's bounds on time and memory; a few cases go through `prunekit sweep` end to end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from prunekit.common.errors import UserError
from prunekit.sweep import spec as sweep_spec
from tests.helpers import tiny
from tests.hostile.harness import MAX_SECONDS, check_memory, cli, count, fixed, one_line
from tests.hostile.test_model_files_fuzz import json_values

BASE = {
    "name": "t",
    "model": {"name": "lenet_300_100"},
    "data": {"name": "synthetic", "shape": [1, 8, 8], "classes": 4, "train_size": 64, "test_size": 32},
    "train": {"epochs": 1, "batch_size": 32},
    "prune": {"method": "imp", "rounds": 1, "ignore": []},
    "threads": 1,
}
HOSTILE = [
    "seeds: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\ngrid: {seed: *a}\n",  # aliases
    "name: &n [a, a, a]\nruns: [*n, *n]\n",
    "seeds: [0]\x00\n",  # NUL byte
    "seeds: [" + "9" * 5000 + "]\n",  # a 5,000-digit integer
    "grid: " + "{a: " * 200 + "1" + "}" * 200 + "\n",  # deep nesting
    "base: !!python/object/apply:os.system ['true']\n",  # a tag
    "name: ../..\n",
    "name: ..\n",
    "name: [1]\n",
    "set: {name: ../x}\n",
    "runs: [{name: ../x}]\n",
]


def _load(path: Path) -> None:
    start = time.process_time()
    try:
        sweep_spec.load(path)
    except UserError as e:
        one_line(str(e))
    assert time.process_time() - start < MAX_SECONDS
    check_memory(path)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_sweep_files_are_one_line(tmp_path, text) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "s.yaml"
    path.write_text("base: base.yaml\n" + text if not text.startswith("base:") else text)
    with pytest.raises(UserError) as info:
        sweep_spec.load(path)
    one_line(str(info.value))


@pytest.mark.parametrize(
    "data", [b"\xff\xfeb\x00a\x00", "seeds: [0]\n".encode("utf-16"), b"\x00" * 10, b"seeds: [0]\n\xc3"]
)
def test_sweep_files_in_other_encodings_are_one_line(tmp_path, data) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(data)
    with pytest.raises(UserError, match="s.yaml"):
        sweep_spec.load(path)


def test_a_hostile_base_config_is_one_line(tmp_path) -> None:
    marker = tmp_path / "PWNED"
    (tmp_path / "base.yaml").write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    (tmp_path / "s.yaml").write_text("base: base.yaml\n")
    rc, err = cli(["sweep", tmp_path / "s.yaml", "--out", tmp_path / "out"])
    assert rc == 2 and "base.yaml" in err and not marker.exists()
    (tmp_path / "base.yaml").write_text("a: &a [1, 1, 1, 1]\nb: [*a, *a, *a, *a]\n")
    rc, err = cli(["sweep", tmp_path / "s.yaml", "--out", tmp_path / "out"])
    assert rc == 2 and "anchors and aliases" in err


def test_a_sweep_name_never_leaves_the_runs_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "s.yaml").write_text("base: base.yaml\nname: ../..\n")
    rc, err = cli(["sweep", tmp_path / "s.yaml"])
    assert rc == 2 and "sweep name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.yaml", "s.yaml"]


@fixed(40)
@given(
    key=st.sampled_from(["seeds", "grid", "set", "runs", "name", "base"]),
    value=json_values,
    extra=st.sampled_from(["", "grid: {prune.rounds: [1, 2]}\n", "seeds: [0, 1]\n"]),
)
def test_mutated_sweep_files(tmp_path_factory, key, value, extra) -> None:
    count("sweep files")
    root = tmp_path_factory.mktemp("sweep")
    (root / "base.yaml").write_text(yaml.safe_dump(BASE))
    spec = {"base": "base.yaml", **yaml.safe_load(extra or "{}"), key: value}
    path = root / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    _load(path)


SLOW = pytest.mark.slow  # each case reruns a sweep point (about 9 s); two stay in the default run


@pytest.mark.parametrize(
    "damage",
    [
        "[]",
        "[" * 100_000 + "]" * 100_000,
        pytest.param("null", marks=SLOW),
        pytest.param('{"complete": "yes"}', marks=SLOW),
        pytest.param("", marks=SLOW),
    ],
)
def test_a_damaged_point_summary_on_a_rerun_resumes_the_point(tmp_path, damage) -> None:
    cfg = tiny(**{"train.epochs": 1, "prune.rounds": 1, "threads": 1}).to_dict()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "s.yaml").write_text("base: base.yaml\nseeds: [0]\n")
    out = tmp_path / "out"
    assert cli(["sweep", tmp_path / "s.yaml", "--out", out, "--workers", "1"])[0] == 0
    summary = out / "seed=0" / "summary.json"
    before = json.loads(summary.read_text())
    summary.write_text(damage)
    rc, _ = cli(["sweep", tmp_path / "s.yaml", "--out", out, "--workers", "1"])
    assert rc == 0 and json.loads(summary.read_text())["rounds"] == before["rounds"]


def test_a_process_server_that_dies_is_one_line(tmp_path, monkeypatch) -> None:
    """A full disk (or /tmp) kills multiprocessing's fork server: EOFError at start, which is one line."""
    import multiprocessing.process

    def broken_start(self) -> None:
        raise EOFError

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", broken_start)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny(**{"train.epochs": 1, "prune.rounds": 1}).to_dict()))
    (tmp_path / "s.yaml").write_text("base: base.yaml\nseeds: [0]\n")
    rc, err = cli(["sweep", tmp_path / "s.yaml", "--out", tmp_path / "out"])
    assert rc == 2 and "full" in err, err
