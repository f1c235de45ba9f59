"""Optional loggers (TensorBoard, MLflow) that mirror a run where users already watch runs.

The runner (rank 0 only) calls `Trackers`: `start` once the run directory is claimed, `rounds(summary)` after every
round (each tracker logs the rounds it has not logged yet: the round's record at step = round index, its epochs at
step = epochs trained in the run so far) and `finish(summary)` with the final files. A tracker that cannot be
imported or fails is dropped with a warning: logging never breaks a run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from prunekit.config import Config

NUMERIC_FIELDS = ("sparsity", "test_accuracy", "val_accuracy", "test_metric", "val_metric", "params", "flops")
NUMERIC_FIELDS += ("epochs", "wall_seconds", "latency_ms", "control_accuracy", "channel_fraction", "flops_removed")


class Tracker(Protocol):
    name: str

    def round(self, index: int, row: dict[str, Any], epochs: list[tuple[int, dict[str, float]]]) -> None: ...

    def finish(self, out: Path, summary: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def round_metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(row[k]) for k in NUMERIC_FIELDS if isinstance(row.get(k), int | float)}


def epoch_metrics(summary: dict[str, Any], index: int) -> list[tuple[int, dict[str, float]]]:
    """(step, values) per epoch of round `index`, step counting epochs from the start of the run."""
    offset = sum(r.get("epochs") or 0 for r in summary["rounds"] if r["round"] < index)
    history = (summary.get("history") or {}).get(str(index)) or []
    out = []
    for h in history:
        values = {k: float(v) for k, v in h.items() if k != "epoch" and isinstance(v, int | float)}
        out.append((offset + int(h["epoch"]), values))
    return out


def _builders() -> dict[str, Callable[[Config, Path], Tracker]]:
    def tensorboard(cfg: Config, out: Path) -> Tracker:
        from prunekit.trackers.tensorboard import TensorBoardTracker

        return TensorBoardTracker(cfg, out)

    def mlflow(cfg: Config, out: Path) -> Tracker:
        from prunekit.trackers.mlflow import MLflowTracker

        return MLflowTracker(cfg, out)

    return {"tensorboard": tensorboard, "mlflow": mlflow}


class Trackers:
    """The trackers a config asks for, each call guarded (see the module docstring)."""

    def __init__(self, cfg: Config, out: Path, enabled: bool = True) -> None:
        self.active: list[Tracker] = []
        self.logged: dict[str, set[int]] = {}
        if not enabled:
            return
        for name, build in _builders().items():
            if not getattr(cfg.log, name):
                continue
            try:
                tracker = build(cfg, Path(out))
            except ImportError as e:
                missing = e.name or name
                warnings.warn(
                    f"log.{name}: {missing} is not installed (pip install 'prunekit[{name}]'); the run goes on "
                    "without it",
                    stacklevel=2,
                )
                continue
            except Exception as e:
                self._warn(name, "start", e)
                continue
            self.active.append(tracker)
            self.logged[tracker.name] = set(getattr(tracker, "already_logged", set()))

    @staticmethod
    def _warn(name: str, what: str, e: Exception) -> None:
        warnings.warn(f"{name} logger failed ({what}: {type(e).__name__}: {e}); continuing without it", stacklevel=3)

    def _each(self, what: str, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.active):
            try:
                call(tracker)
            except Exception as e:
                self._warn(tracker.name, what, e)
                self.active.remove(tracker)
                self._close(tracker)

    def rounds(self, summary: dict[str, Any]) -> None:
        def log(tracker: Tracker) -> None:
            done = self.logged[tracker.name]
            for row in summary["rounds"]:
                if row["round"] not in done:
                    tracker.round(row["round"], row, epoch_metrics(summary, row["round"]))
                    done.add(row["round"])

        self._each("round", log)

    def finish(self, out: Path, summary: dict[str, Any]) -> None:
        self.rounds(summary)
        self._each("finish", lambda t: t.finish(Path(out), summary))

    def close(self) -> None:
        for tracker in self.active:
            self._close(tracker)
        self.active = []

    def _close(self, tracker: Tracker) -> None:
        try:
            tracker.close()
        except Exception as e:
            self._warn(tracker.name, "close", e)
