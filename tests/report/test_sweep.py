"""Sweeps: runs that differ only in seed and name are one group with mean, std and n; AIMP vs IMP pairing."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from prunekit.report.runs import load_runs
from prunekit.report.sweep import group_runs, speedups, stat
from tests.report.synthetic import imp_and_oneshot_sweep, make_run


def test_seeds_of_one_config_form_one_group(tmp_path: Path) -> None:
    paths = imp_and_oneshot_sweep(tmp_path)
    make_run(tmp_path / "other", "lenet-oneshot-95", [0.0, 0.95], [0.97, 0.5], seed=0, prune={"sparsity": 0.95})
    groups = group_runs(load_runs([*paths.values(), tmp_path / "other"]))
    sizes = {g.label: g.n for g in groups}
    assert sizes == {"lenet-imp": 1, "lenet-aimp": 1, "lenet-oneshot": 2, "lenet-oneshot-95": 1}
    sweep = next(g for g in groups if g.n == 2)
    final = sweep.stat(lambda r: r.final_accuracy)
    assert final.mean == pytest.approx((0.8123 + 0.8321) / 2)
    assert final.std == pytest.approx(statistics.stdev([0.8123, 0.8321])) and final.n == 2
    sparsity, accuracy, others = sweep.curve()[1]
    assert sparsity.mean == 0.5 and accuracy.mean == pytest.approx(0.964) and others["params"].n == 2


def test_colours_are_assigned_once_and_distinct(tmp_path: Path) -> None:
    groups = group_runs(load_runs(list(imp_and_oneshot_sweep(tmp_path).values())))
    assert len({g.color for g in groups}) == len(groups)
    again = group_runs(load_runs(list(imp_and_oneshot_sweep(tmp_path).values())))
    assert [g.color for g in again] == [g.color for g in groups]


def test_stat_skips_missing_values() -> None:
    assert stat([None, None]) is None
    s = stat([1.0, None, 3.0])
    assert (s.mean, s.n) == (2.0, 2) and s.std == pytest.approx(2**0.5)
    assert stat([4.0]).std == 0.0


def test_aimp_speedup_against_the_closest_finished_imp(tmp_path: Path) -> None:
    paths = imp_and_oneshot_sweep(tmp_path)
    make_run(
        tmp_path / "imp_lr",
        "imp-lrr",
        [0.0, 0.2],
        [0.97, 0.97],
        method="imp",
        prune={"rounds": 3, "rewind": "lr"},
        seconds=[1.0, 1.0],
    )
    make_run(
        tmp_path / "imp_running",
        "lenet-imp",
        [0.0],
        [0.97],
        method="imp",
        prune={"rounds": 3},
        epochs=[1],
        seconds=[1.0],
        complete=False,
        seed=5,
    )  # a seed of lenet-imp still running: left out
    groups = group_runs(load_runs([*paths.values(), tmp_path / "imp_lr", tmp_path / "imp_running"]))
    pairs = speedups(groups)
    assert list(pairs) == ["lenet-aimp"]
    imp, wall, epochs = pairs["lenet-aimp"]
    assert imp.label == "lenet-imp" and imp.n == 2 and len(imp.finished) == 1
    assert wall.mean == pytest.approx(32.0 / 20.0) and epochs.mean == pytest.approx(16 / 10)


def test_groups_of_one_config_file_are_told_apart_by_method(tmp_path: Path) -> None:
    runs = [
        make_run(tmp_path / f"{rewind}{seed}", "cfg", [0.0, 0.2], [0.97, 0.97], seed=seed, method="imp", prune=p)
        for rewind, p in (("wr", {"rewind": "init"}), ("lrr", {"rewind": "lr"}), ("aimp", {"rewind": "lr", "tau": 1}))
        for seed in (0, 1)
    ]
    groups = group_runs(load_runs(runs))
    assert [(g.label, g.n) for g in groups] == [("cfg: IMP+WR", 2), ("cfg: IMP+LRR", 2), ("cfg: AIMP τ=1 (LRR)", 2)]


def test_seeds_written_by_versions_with_fewer_keys_form_one_group(tmp_path: Path) -> None:
    """A config.yaml that spells out keys at their defaults (as newer versions write it) groups with one that omits
    them (as older versions did); a key set away from its default still makes a group of its own."""
    curve = ([0.0, 0.5], [0.97, 0.96])
    make_run(tmp_path / "old", "cfg", *curve, seed=0)
    spelled = {"squeeze": False, "tau_tolerance": 0.002, "finetune_lr": None, "ignore": None}  # the documented defaults
    make_run(tmp_path / "new", "cfg", *curve, seed=1, prune=spelled)
    make_run(tmp_path / "other", "cfg", *curve, seed=2, prune={**spelled, "tau_tolerance": 0.01})
    groups = group_runs(load_runs([tmp_path / "old", tmp_path / "new", tmp_path / "other"]))
    assert sorted(g.n for g in groups) == [1, 2]
    pair = next(g for g in groups if g.n == 2)
    assert sorted(r.path.name for r in pair.runs) == ["new", "old"]
