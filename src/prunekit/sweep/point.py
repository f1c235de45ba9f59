"""One point of a sweep, run in a process of its own: the function the local pool and Ray tasks both execute.

`run_point(job)` never raises: it returns the outcome (ok, or the error's one line), so one failing run cannot stop
the others. The process is dedicated to the run (a fresh one per run in both executors), so it may point its
stdout and stderr at the run's log file and set torch's thread budget for the whole process.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _redirect(log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def run_point(job: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) `job["config"]` into `job["out"]`; its progress goes to `job["log"]`.

    job: {"name", "config" (a Config as a dict), "out", "log", "threads" (torch threads unless the config sets them)}.
    """
    began = time.perf_counter()
    outcome: dict[str, Any] = {"name": job["name"], "ok": False, "error": None, "log": job["log"]}
    try:
        _redirect(Path(job["log"]))
        import torch

        from prunekit import config as config_mod
        from prunekit.common.errors import UserError
        from prunekit.runner.experiment import Run

        if job.get("threads"):
            torch.set_num_threads(int(job["threads"]))
        cfg = config_mod.from_dict(job["config"])
        print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {cfg.name} -> {job['out']}", flush=True)
        try:
            summary = Run(cfg, job["out"], log=lambda line: print(line, file=sys.stderr, flush=True)).execute()
            outcome.update(
                ok=True,
                final_metric=summary.get("final_metric"),
                final_sparsity=summary.get("final_sparsity"),
                metric=(summary.get("metric") or {}).get("name", "accuracy"),
            )
        except UserError as e:
            outcome.update(error=str(e), user_error=True)
            print(f"prunekit: error: {e}", file=sys.stderr, flush=True)
    except Exception as e:  # a bug in this run: recorded, the sweep goes on
        traceback.print_exc()
        outcome["error"] = f"internal error: {type(e).__name__}: {e}"
    outcome["seconds"] = round(time.perf_counter() - began, 1)
    return outcome
