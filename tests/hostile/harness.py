"""Running prunekit on hostile input, in-process, with the checks every case must pass.

Each case: exit code 0 or 2 (never 1, a bug), on failure exactly one line on stderr starting "prunekit: error:",
no traceback, at most MAX_SECONDS of CPU time (CPU, not wall: the shared machine's load must not decide the
verdict; a hang or a runaway loop burns CPU either way), and the process's peak resident memory never more than
MAX_EXTRA_BYTES above what it was when the suite started. Hypothesis runs derandomized with a fixed number of
examples per property, so the suite's cases and its time are the same on every run.
"""

from __future__ import annotations

import io
import resource
import time
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import HealthCheck, settings

from prunekit.cli import main

MAX_SECONDS = 10.0
MAX_EXTRA_BYTES = 1 << 30
_BASELINE = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
COUNTS: dict[str, int] = {}  # property name -> cases run, printed at the end of the session (conftest.py)


def fixed(examples: int) -> settings:
    """Hypothesis settings for one property: `examples` derandomized cases, no deadline flakiness from a busy
    machine (time is bounded by MAX_SECONDS per case instead), no example database."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def cli(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of `prunekit ARGV`, asserting the rules above."""
    out, err = io.StringIO(), io.StringIO()
    start = time.process_time()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main([str(a) for a in argv])
    elapsed = time.process_time() - start
    text = err.getvalue().strip()
    assert rc in (0, 2), f"exit {rc} for {argv}: {text[-500:]}"
    if rc == 2:
        lines = text.splitlines()
        assert len(lines) == 1, f"{len(lines)} lines for {argv}: {text[:1000]}"
        assert lines[0].startswith("prunekit: error:") and "Traceback" not in text, text
        assert len(lines[0]) <= 1100, lines[0][:200]
    assert elapsed < MAX_SECONDS, f"{elapsed:.1f} CPU s for {argv}"
    check_memory(argv)
    return rc, text


def check_memory(what: object) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak - _BASELINE < MAX_EXTRA_BYTES, f"peak memory {peak / 2**20:.0f} MiB after {what}"


def one_line(message: str) -> None:
    assert message and "\n" not in message and len(message) < 1100, message[:300]


def set_at(tree: object, path: tuple, value: object) -> None:
    """Set `tree[path]` to `value` where every step of the path exists (a fuzzed edit of a JSON tree); else nothing."""
    for key in path[:-1]:
        if (
            isinstance(tree, dict)
            and key in tree
            or isinstance(tree, list)
            and isinstance(key, int)
            and key < len(tree)
        ):
            tree = tree[key]
        else:
            return
    if isinstance(tree, dict) or (isinstance(tree, list) and isinstance(path[-1], int) and path[-1] < len(tree)):
        tree[path[-1]] = value
