"""Whole-run progress: one line per epoch with the run's ETA, on a terminal or in a log file alike.

The ETA is the mean time of the epochs trained so far in this process times the epochs still planned (every
unfinished round and control), so it is honest after a resume and improves as the run goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    """3725 -> "1h02m", 125 -> "2m05s", 9.4 -> "9s"."""
    s = max(int(round(seconds)), 0)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Counts planned and finished epochs; `epoch_done` logs one line per epoch."""

    def __init__(self, total_epochs: int, log: Callable[[str], None]) -> None:
        self.total, self.done, self.log = total_epochs, 0, log
        self.seconds = 0.0
        self.started = time.perf_counter()

    def skip(self, epochs: int) -> None:
        """Epochs that need no training in this process (finished before a resume)."""
        self.total -= epochs

    def epoch_done(self, what: str, seconds: float, details: str) -> None:
        self.done += 1
        self.seconds += seconds
        left = max(self.total - self.done, 0)
        eta = self.seconds / self.done * left
        share = self.done / self.total if self.total else 1.0
        self.log(f"{what}: {details} ({seconds:.1f} s); run {share:.0%} done, ETA {duration(eta)}")
