"""Damaged run directories given to a resumed run (`prunekit run CONFIG --out DIR` again): config.yaml, summary.json,
rounds.csv, the round checkpoints, the rewind point and the progress record of the unfinished round, mutated.

Every case ends in exit 2 with one line (harness.cli) or in a complete run; when only the files a run rebuilds or
compares were damaged (summary.json, rounds.csv, config.yaml), that run equals the uninterrupted one.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from prunekit.cli import main
from prunekit.runner.experiment import run
from tests.helpers import Crash, tiny
from tests.hostile.harness import MAX_SECONDS, check_memory, count, fixed, set_at
from tests.hostile.model_files import join, split
from tests.hostile.test_model_files_fuzz import json_values

CONFIG = {"train.epochs": 3, "prune.rounds": 2, "prune.rewind": "epoch:1"}
CHECKPOINTS = ["rewind", "round_0", "round_1", "round_2.epoch"]  # what the interrupted run left
PROGRESS_KEYS = ["epochs_done", "seconds", "history", "shape", "pruned", "prune_seconds"]
RECORD_KEYS = ["round", "sparsity", "test_accuracy", "epochs", "layers", "epoch"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The config file, an interrupted run (killed after round 2's progress record) and the uninterrupted run."""
    from prunekit.store import checkpoint

    root = tmp_path_factory.mktemp("resume")
    cfg = tiny(**CONFIG)
    (root / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    run(cfg, root / "straight", log=lambda _: None)
    original, calls = checkpoint.save, []

    def crashing(path, *args, **kwargs) -> None:
        original(path, *args, **kwargs)
        calls.append(path)
        if path.name == "round_2.epoch.safetensors":
            raise Crash

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "save", crashing)
        with pytest.raises(Crash):
            run(cfg, root / "interrupted", log=lambda _: None)
    names = sorted(p.name for p in (root / "interrupted" / "checkpoints").iterdir())
    assert names == sorted(f"{c}.safetensors" for c in CHECKPOINTS), names
    return {"config": root / "c.yaml", "interrupted": root / "interrupted", "straight": root / "straight"}


def _resume(dirs: dict[str, Path], root: Path, damage) -> tuple[int, Path]:
    """Resume the damaged copy: exit 0, or exit 2 whose last line (after the progress lines of the rounds it ran) is
    the only error line; never exit 1 or a traceback (harness.cli's rules, progress lines allowed)."""
    target = root / "run"
    shutil.copytree(dirs["interrupted"], target)
    damage(target)
    out, err = io.StringIO(), io.StringIO()
    start = time.process_time()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["run", str(dirs["config"]), "--out", str(target)])
    text = err.getvalue().strip()
    assert rc in (0, 2), f"exit {rc}: {text[-800:]}"
    assert "Traceback" not in text and "internal error" not in text, text[-800:]
    errors = [line for line in text.splitlines() if line.startswith("prunekit:")]
    assert (len(errors), rc) in ((0, 0), (1, 2)) and (rc == 0 or text.splitlines()[-1] == errors[0]), text[-800:]
    assert time.process_time() - start < MAX_SECONDS
    check_memory(target)
    return rc, target


def _accuracies(run_dir: Path) -> list[float]:
    return [r["test_accuracy"] for r in json.loads((run_dir / "summary.json").read_text())["rounds"]]


def _complete(rc: int, target: Path, dirs: dict[str, Path], equal: bool) -> None:
    if rc == 0:
        summary = json.loads((target / "summary.json").read_text())
        assert summary["complete"] and len(summary["rounds"]) == 3, summary
        if equal:
            assert _accuracies(target) == _accuracies(dirs["straight"])


@fixed(6)
@given(
    name=st.sampled_from(["config.yaml", "summary.json", "rounds.csv"]),
    cut=st.one_of(st.none(), st.integers(0, 5000)),
    flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=3),
)
def test_damaged_bytes_of_the_rebuilt_and_compared_files(dirs, tmp_path_factory, name, cut, flips) -> None:
    count("resume: config/summary/rounds bytes")

    def damage(target: Path) -> None:
        data = bytearray((target / name).read_bytes())
        for pos, byte in flips:
            data[pos % len(data)] = byte
        (target / name).write_bytes(bytes(data[: cut % (len(data) + 1)] if cut is not None else data))

    rc, target = _resume(dirs, tmp_path_factory.mktemp("bytes"), damage)
    _complete(rc, target, dirs, equal=True)


@fixed(6)
@given(
    name=st.sampled_from(["config.yaml", "summary.json"]),
    key=st.sampled_from(["name", "seed", "train", "prune", "rounds", "complete", "model", "data", "arch"]),
    value=json_values,
)
def test_damaged_fields_of_config_and_summary(dirs, tmp_path_factory, name, key, value) -> None:
    count("resume: config/summary fields")

    def damage(target: Path) -> None:
        path = target / name
        tree = yaml.safe_load(path.read_text()) if name == "config.yaml" else json.loads(path.read_text())
        set_at(tree, (key,), value)
        path.write_text(yaml.safe_dump(tree) if name == "config.yaml" else json.dumps(tree))

    rc, target = _resume(dirs, tmp_path_factory.mktemp("fields"), damage)
    _complete(rc, target, dirs, equal=True)


@fixed(12)
@given(
    which=st.sampled_from(CHECKPOINTS),
    key=st.sampled_from([*PROGRESS_KEYS, *RECORD_KEYS]),
    value=json_values,
    how=st.sampled_from(["record", "flips", "cut", "delete", "metadata"]),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_damaged_checkpoints_and_progress_records(dirs, tmp_path_factory, which, key, value, how, flips) -> None:
    count("resume: checkpoints and progress records")

    def damage(target: Path) -> None:
        path = target / "checkpoints" / f"{which}.safetensors"
        if how == "delete":
            path.unlink()
            return
        header, body = split(path.read_bytes())
        if how == "record":
            record = json.loads(header["__metadata__"]["record"])
            set_at(record, (key,), value)
            header["__metadata__"]["record"] = json.dumps(record)
        elif how == "metadata":
            header["__metadata__"]["optimizer_numbers" if key in PROGRESS_KEYS else "record"] = json.dumps(value)
        data = bytearray(join(header, body))
        for pos, byte in flips if how == "flips" else []:
            data[pos % len(data)] = byte
        path.write_bytes(bytes(data[: flips[0][0] % len(data)] if how == "cut" else data))

    rc, target = _resume(dirs, tmp_path_factory.mktemp("ckpt"), damage)
    _complete(rc, target, dirs, equal=how == "delete")


def test_an_undamaged_interrupted_run_resumes_to_the_uninterrupted_one(dirs, tmp_path) -> None:
    rc, target = _resume(dirs, tmp_path, lambda target: None)
    assert rc == 0 and _accuracies(target) == _accuracies(dirs["straight"])


@pytest.mark.parametrize(
    ("which", "key", "value", "fragment"),
    [
        ("round_2.epoch", "epochs_done", None, "progress epochs_done"),
        ("round_2.epoch", "history", [{"epoch": 7}], "progress history"),
        ("round_2.epoch", "seconds", -1, "progress seconds"),
        ("round_1", "history", {}, "history.1"),
        ("round_1", "round", 5, "record's round"),
        ("round_0", "epochs", None, "record's epochs"),
    ],
)
def test_the_exit_one_records_found_by_the_suite(dirs, tmp_path, which, key, value, fragment) -> None:
    def damage(target: Path) -> None:
        path = target / "checkpoints" / f"{which}.safetensors"
        header, body = split(path.read_bytes())
        record = json.loads(header["__metadata__"]["record"])
        record[key] = value
        header["__metadata__"]["record"] = json.dumps(record)
        path.write_bytes(join(header, body))

    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "run"
    shutil.copytree(dirs["interrupted"], target)
    damage(target)
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["run", str(dirs["config"]), "--out", str(target)])
    last = err.getvalue().strip().splitlines()[-1]
    assert rc == 2 and fragment in last and f"{which}.safetensors" in last, err.getvalue()[-500:]
