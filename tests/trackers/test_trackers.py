"""Loggers: TensorBoard's event files read back; a failing or missing logger is a warning and the run finishes;
log.* keys change no result, so a finished run accepts them changed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prunekit.runner import experiment
from prunekit.trackers import Trackers
from tests.helpers import tiny


def test_tensorboard_records_rounds_and_epochs(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = experiment.run(tiny(**{"log.tensorboard": True}), tmp_path, log=lambda _: None)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    accuracy = [(e.step, round(e.value, 6)) for e in events.Scalars("round/test_accuracy")]
    assert accuracy == [(r["round"], r["test_accuracy"]) for r in summary["rounds"]]
    val = events.Scalars("epoch/val_accuracy")
    assert [e.step for e in val] == list(range(1, summary["total_epochs"] + 1))


class Broken:
    name = "broken"

    def round(self, *_: object) -> None:
        raise OSError("disk full")

    def finish(self, *_: object) -> None:
        raise AssertionError("never called after a failure")

    def close(self) -> None:
        pass


def test_a_failing_logger_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prunekit import trackers

    monkeypatch.setattr(trackers, "_builders", lambda: {"tensorboard": lambda cfg, out: Broken()})
    with pytest.warns(UserWarning, match="broken logger failed .*disk full"):
        summary = experiment.run(tiny(**{"log.tensorboard": True}), tmp_path, log=lambda _: None)
    assert summary["complete"]


def test_a_missing_logger_names_its_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.entities", None)
    with pytest.warns(UserWarning, match=r"prunekit\[mlflow\]"):
        t = Trackers(tiny(**{"log.mlflow": True}), tmp_path)
    assert t.active == []


def test_log_keys_do_not_change_a_run(tmp_path: Path) -> None:
    experiment.run(tiny(), tmp_path, log=lambda _: None)
    before = json.loads((tmp_path / "summary.json").read_text())
    experiment.run(tiny(**{"log.tensorboard": True}), tmp_path, log=lambda _: None)  # accepted, nothing retrained
    assert json.loads((tmp_path / "summary.json").read_text())["rounds"] == before["rounds"]
