"""Adaptive AIMP (prune.tau: auto): intermediate rounds stop once validation is back, the last trains fully."""

import pytest

from prunekit.common.errors import UserError
from prunekit.pruning.methods import METHODS
from prunekit.runner import experiment
from tests.helpers import run_interrupted, tiny

AUTO = {"prune.tau": "auto", "prune.rounds": 3, "train.epochs": 4, "prune.tau_min": 1, "prune.tau_tolerance": 0.5}


def test_plan_sets_the_check_on_intermediate_rounds_only():
    plans = METHODS.get("imp")(tiny(**AUTO, **{"prune.tau_max": 3}), {"fc1.weight": 10})
    assert [(p.epochs, p.stop_within, p.min_epochs) for p in plans[1:]] == [(3, 0.5, 1), (3, 0.5, 1), (4, None, 0)]
    assert plans[1].squeeze == pytest.approx(4 / 3)


def test_rounds_stop_when_recovered_and_record_their_epochs(tmp_path):
    lines = []
    summary = experiment.run(tiny(**AUTO), tmp_path, log=lines.append)
    epochs = [r["epochs"] for r in summary["rounds"]]
    assert epochs == [4, 1, 1, 4]  # a tolerance of 0.5 is met after the minimum; the last round trains fully
    assert sum(1 for line in lines if "stopping early" in line) == 2
    assert summary["total_epochs"] == 10


def test_a_tight_tolerance_trains_up_to_the_maximum(tmp_path):
    summary = experiment.run(tiny(**{**AUTO, "prune.tau_tolerance": 0.0, "prune.tau_max": 2}), tmp_path, log=print)
    for row in summary["rounds"][1:-1]:
        assert 1 <= row["epochs"] <= 2


def test_resume_gives_the_same_run(tmp_path, monkeypatch):
    cfg = tiny(**{**AUTO, "prune.tau_tolerance": 0.0, "prune.tau_max": 3})
    whole = experiment.run(cfg, tmp_path / "a", log=lambda _: None)
    run_interrupted(cfg, tmp_path / "b", 5, monkeypatch)
    again = experiment.run(cfg, tmp_path / "b", log=lambda _: None)
    timings = ("wall_seconds", "prune_seconds")
    strip = lambda s: [{k: v for k, v in r.items() if k not in timings} for r in s["rounds"]]  # noqa: E731
    assert strip(again) == strip(whole)


def test_no_validation_split_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="validation split"):
        experiment.run(tiny(**{**AUTO, "data.val_size": 0}), tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()
