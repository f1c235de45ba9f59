"""Reading run directories: tolerant of runs in progress and missing fields; labels and method names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunekit.common.errors import UserError
from prunekit.report.runs import RunInfo, find_runs, load_runs, load_summary
from tests.report.synthetic import imp_and_oneshot_sweep, make_run


def test_find_runs_searches_below_a_parent(tmp_path: Path) -> None:
    paths = imp_and_oneshot_sweep(tmp_path)
    found = find_runs([tmp_path])
    assert sorted(found) == sorted(paths.values())
    assert find_runs([paths["imp"], tmp_path]).count(paths["imp"]) == 1


def test_find_runs_and_load_summary_refuse_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no run directories"):
        find_runs([tmp_path])
    with pytest.raises(UserError, match="no such run directory"):
        find_runs([tmp_path / "missing"])
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_summary(tmp_path)


def test_labels_are_unique_for_runs_with_the_same_name(tmp_path: Path) -> None:
    paths = imp_and_oneshot_sweep(tmp_path)
    runs = load_runs(list(paths.values()))
    labels = [r.label for r in runs]
    assert len(set(labels)) == len(labels)
    assert "lenet-oneshot: seed=0" in labels and "lenet-imp" in labels, labels


def test_method_labels_follow_the_papers(tmp_path: Path) -> None:
    paths = imp_and_oneshot_sweep(tmp_path)
    make_run(tmp_path / "lrr", "lrr", [0.0, 0.2], [0.9, 0.9], method="imp", prune={"rewind": "lr"})
    make_run(tmp_path / "late", "late", [0.0, 0.2], [0.9, 0.9], method="imp", prune={"rewind": "epoch:2"})
    make_run(tmp_path / "ch", "ch", [0.0, 0.5], [0.9, 0.8], prune={"structure": "channel", "criterion": "l1_filter"})
    runs = {r.name: r for r in load_runs([*paths.values(), tmp_path / "lrr", tmp_path / "late", tmp_path / "ch"])}
    assert runs["lenet-imp"].method_label == "IMP+WR"
    assert runs["lenet-aimp"].method_label == "AIMP τ=1 (WR)"
    assert runs["lrr"].method_label == "IMP+LRR"
    assert runs["late"].method_label == "IMP+WR@2"
    assert runs["ch"].method_label == "one-shot l1_filter channel" and runs["ch"].structured
    assert runs["lenet-oneshot"].method_label == "one-shot" and not runs["lenet-oneshot"].structured


def test_in_progress_run_without_config_or_optional_fields(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {
                "name": "x",
                "complete": False,
                "rounds": [
                    {"round": 0, "sparsity": 0.0, "test_accuracy": 0.95},
                    {"round": 1, "sparsity": 0.5, "test_accuracy": 0.93},
                ],
            }
        )
    )
    run = load_runs([tmp_path])[0]
    assert not run.complete and run.config == {} and run.seed is None
    assert run.dense_accuracy == 0.95 and run.final_accuracy == 0.93 and run.final_sparsity == 0.5
    assert run.best_accuracy == 0.93 and run.epochs is None and run.wall_seconds is None
    assert run.model == "?" and run.method_label == "?"


def test_highest_sparsity_within_one_point(tmp_path: Path) -> None:
    make_run(tmp_path, "r", [0.0, 0.5, 0.8, 0.9], [0.97, 0.968, 0.9605, 0.95])
    run = RunInfo(tmp_path, load_summary(tmp_path))
    assert run.highest_within(1.0) == 0.8
    assert run.highest_within(0.1) == 0.0
    assert run.best_accuracy == 0.968


def test_labels_too_long_to_show_whole_keep_only_what_sets_a_run_apart():
    from prunekit.report.runs import MAX_LABEL, differing_labels

    def cfg(penalty, init, low, weighted=False):
        return {"prune": {"bit_penalty": penalty, "bits_init": init, "bits_min": low, "bits_weighted": weighted}}

    configs = [cfg(0.01, 8, 2), cfg(0.1, 8, 2), cfg(0.03, 8, 2, True), cfg(0.0, 3, 3), cfg(0.0, 4, 4)]
    labels = differing_labels(["bp"] * 5, configs)
    assert labels == [
        "bp: bit_penalty=0.01",
        "bp: bit_penalty=0.1",
        "bp: bit_penalty=0.03, bits_weighted=true",
        "bp: bits_init=3, bits_min=3",  # bit_penalty 0.0 is the most common value: not shown
        "bp: bits_init=4, bits_min=4",
    ]
    assert all(len(label) <= MAX_LABEL + 16 for label in labels)
    short = differing_labels(["a", "a"], [{"prune": {"tau": 1}}, {"prune": {"tau": None}}])
    assert short == ["a: tau=1", "a: tau=null"]  # short enough: every differing key, as before
