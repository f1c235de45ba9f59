"""The sweep file: expansion of grid, seeds and runs; names; validation before any run; bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prunekit.common.errors import UserError
from prunekit.sweep import load, point_name
from prunekit.sweep.spec import MAX_POINTS, UNSAFE
from tests.helpers import tiny


def _write(tmp_path: Path, spec: dict, base: bool = True) -> Path:
    if base:
        (tmp_path / "base.yaml").write_text(yaml.safe_dump({**tiny().to_dict(), "name": "lth"}))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_grid_times_seeds_plus_runs(tmp_path: Path) -> None:
    spec = {"base": "base.yaml", "grid": {"prune.tau": [None, 1]}, "seeds": [0, 1, 2], "runs": [{"prune.rewind": "lr"}]}
    sweep = load(_write(tmp_path, spec))
    assert len(sweep.points) == (2 + 1) * 3 and sweep.name == "sweep"
    names = [p.name for p in sweep.points]
    assert names[:3] == ["prune.tau=null,seed=0", "prune.tau=null,seed=1", "prune.tau=null,seed=2"]
    assert "prune.rewind=lr,seed=2" in names and len(set(names)) == len(names)
    tau1 = [p for p in sweep.points if p.overrides.get("prune.tau") == 1]
    assert {p.cfg.seed for p in tau1} == {0, 1, 2} and all(p.cfg.prune.tau == 1 for p in tau1)
    assert {p.cfg.name for p in tau1} == {"lth,prune.tau=1"}  # seeds of one config share a name: one report group
    assert all(p.cfg.train.epochs == tiny().train.epochs for p in sweep.points)  # the rest comes from base


def test_set_changes_every_point_without_renaming_the_runs(tmp_path: Path) -> None:
    spec = {"base": "base.yaml", "set": {"train.epochs": 1, "prune.rounds": 3}, "grid": {"prune.tau": [None, 1]}}
    sweep = load(_write(tmp_path, spec))
    assert [p.name for p in sweep.points] == ["prune.tau=null", "prune.tau=1"]  # set keys are not in the names
    assert all(p.cfg.train.epochs == 1 and p.cfg.prune.rounds == 3 for p in sweep.points)
    assert {p.cfg.name for p in sweep.points} == {"lth,prune.tau=null", "lth,prune.tau=1"}
    renamed = load(_write(tmp_path, {"base": "base.yaml", "set": {"name": "lth15", "prune.rounds": 15}}))
    assert [(p.name, p.cfg.name, p.cfg.prune.rounds) for p in renamed.points] == [("base", "lth15", 15)]


def test_inline_base_and_no_grid_is_one_point(tmp_path: Path) -> None:
    sweep = load(_write(tmp_path, {"base": {"train": {"epochs": 1}}}, base=False))
    assert [p.name for p in sweep.points] == ["base"] and sweep.points[0].cfg.train.epochs == 1


def test_names_are_safe_stable_and_short() -> None:
    assert point_name({"seed": 1, "prune.tau": 2}) == point_name({"prune.tau": 2, "seed": 1}) == "prune.tau=2,seed=1"
    odd = point_name({"prune.rewind": "epoch:2", "prune.sparsity": [0.5, 0.9], "name": "a/b c"})
    assert not UNSAFE.search(odd) and "/" not in odd
    long = point_name({"prune.ignore": [f"layer{i}.weight" for i in range(40)]})
    other = point_name({"prune.ignore": [f"layer{i}.weight" for i in range(41)]})
    assert len(long) <= 120 and long != other


def test_colliding_names_get_a_hash(tmp_path: Path) -> None:
    spec = {"base": "base.yaml", "runs": [{"prune.rewind": "epoch:1"}, {"prune.rewind": "epoch_1"}]}
    with pytest.raises(UserError, match="prune.rewind"):  # epoch_1 is no valid rewind: validated before running
        load(_write(tmp_path, spec))
    spec = {"base": "base.yaml", "runs": [{"name": "a:b"}, {"name": "a_b"}]}
    with pytest.raises(UserError, match="give the same config"):  # names differ only in name: the same run twice
        load(_write(tmp_path, spec))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"base": "base.yaml", "grid": {"prune.sparsity": [0.5, 1.5]}}, "sweep point prune.sparsity=1.5"),
        ({"base": "base.yaml", "grid": {"train.epoch": [1]}}, "did you mean train.epochs"),
        ({"base": "base.yaml", "grid": {"seed": [0]}, "seeds": [1]}, "seeds in one place"),
        ({"base": "base.yaml", "grid": {"seed": []}}, "non-empty list"),
        ({"base": "missing.yaml"}, "not found"),
        ({"base": "base.yaml", "grids": {}}, "unknown keys"),
        ({"base": "base.yaml", "set": {"prune.tau": 1}, "grid": {"prune.tau": [2]}}, "both in set and in the grid"),
        ({"base": "base.yaml", "set": {"train.epoch": 1}}, "did you mean train.epochs"),
        ({"base": "base.yaml", "set": [1]}, "sweep set must be a mapping"),
        ({"base": "base.yaml", "grid": {"prune.method": ["imp", "oneshots"]}}, "oneshots"),
        ({"base": "base.yaml", "grid": {"seed": list(range(101)), "train.lr": [0.1] * 100}}, "more than"),
    ],
)
def test_bad_sweeps_fail_before_anything_runs(tmp_path: Path, spec: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load(_write(tmp_path, spec))
    assert MAX_POINTS < 101 * 100
