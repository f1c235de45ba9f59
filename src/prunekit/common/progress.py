"""Whole-run progress: one line per epoch with the run's ETA, on a terminal or in a log file alike; within an
epoch a bar on a terminal and a line every 30 s elsewhere (StepBar); searches and scans say where they are (Ticker).

The ETA is the mean time of the epochs trained so far in this process times the epochs still planned (every
unfinished round and control), so it is honest after a resume and improves as the run goes.
"""

from __future__ import annotations

import sys
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


HEARTBEAT_SECONDS = 30.0  # without a terminal, a loop says where it is at least this often


class StepBar:
    """Progress within an epoch (or any loop of `total` steps): a tqdm bar on a terminal, otherwise (a log file, a
    notebook, a pipe) one line every HEARTBEAT_SECONDS with the steps done and the time left in the loop.
    `enabled=False` (ranks other than 0) says nothing. Use as a context manager; call `update()` after each step."""

    def __init__(self, total: int, desc: str, *, enabled: bool = True, log: Callable[[str], None] | None = None):
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, leave=False, disable=not (enabled and tty), mininterval=0.5)
        self.lines = enabled and not tty
        self.total, self.desc, self.done = total, desc.strip() or "training", 0
        self.log = log or _say
        self.start = self.last = time.perf_counter()

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.close()

    def update(self, steps: int = 1) -> None:
        self.bar.update(steps)
        self.done += steps
        now = time.perf_counter()
        if self.lines and now - self.last >= HEARTBEAT_SECONDS:
            self.last = now
            elapsed = now - self.start
            left = f", {duration(elapsed / self.done * (self.total - self.done))} left" if self.total else ""
            of = f"/{self.total}" if self.total else ""
            self.log(f"{self.desc}: step {self.done}{of} ({duration(elapsed)} so far{left})")


class Ticker:
    """Progress of a search or scan over `total` items (AMC episodes, layers of a sensitivity scan): a line at every
    tenth of the work and at least every HEARTBEAT_SECONDS, with the time left."""

    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        self.total, self.log = total, log
        self.start = self.last = time.perf_counter()
        self.every = max(1, total // 10)

    def tick(self, done: int, text: str, force: bool = False) -> None:
        """`done` items finished; `text` says what (e.g. "amc: episode 30/300, best reward ...")."""
        now = time.perf_counter()
        if not (force or done % self.every == 0 or done == self.total or now - self.last >= HEARTBEAT_SECONDS):
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed / done * (self.total - done) if done else 0.0
        self.log(f"{text} ({duration(elapsed)} so far, ETA {duration(left)})")


def _say(line: str) -> None:
    print(line, flush=True)
