"""The local executor: a fresh process per run, at most `workers` at a time, no service to start.

A fresh process per run keeps runs independent (torch's global state, memory) and lets each set its own thread
budget. Processes come from a fork server that has imported prunekit once (spawn where there is none). A run's
process watches the sweep's: if the sweep dies (kill -9 included), the run stops within a second, so its lock is
free for the rerun, which resumes it from its last checkpoint.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip
from prunekit.sweep.point import run_point

Report = Callable[[dict[str, Any]], None]


def _watch(parent: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(137)
        except PermissionError:
            continue


def _child(job: dict[str, Any], conn: Connection, parent: int) -> None:
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    conn.send(run_point(job))
    conn.close()


def _context() -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["prunekit.runner.experiment", "prunekit.sweep.point"])
        return ctx
    return mp.get_context("spawn")


def run_local(jobs: list[dict[str, Any]], workers: int, report: Report) -> None:
    """Run every job, `workers` at a time; `report(outcome)` as each finishes."""
    ctx, pending = _context(), list(jobs)
    running: dict[Any, tuple[Any, dict[str, Any], Connection]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(job, send, os.getpid()), name=f"prunekit {job['name']}")
                try:
                    proc.start()
                except (EOFError, ConnectionError) as exc:  # the process server died: a full disk or /tmp, or no memory
                    raise UserError(
                        f"cannot start the process of sweep point {job['name']} ({type(exc).__name__}: "
                        f"{clip(str(exc), 80) or 'the process server closed'}); is the disk or /tmp full?"
                    ) from None
                send.close()
                running[proc.sentinel] = (proc, job, recv)
            for sentinel in wait(list(running)):
                proc, job, recv = running.pop(sentinel)
                proc.join()
                try:
                    outcome = recv.recv() if recv.poll() else None
                except (EOFError, OSError):  # a half-sent outcome: the process died while sending it
                    outcome = None
                if outcome is None:
                    outcome = {
                        "name": job["name"],
                        "ok": False,
                        "error": f"its process died (exit code {proc.exitcode})",
                        "log": job["log"],
                    }
                report(outcome)
    finally:
        for proc, _, _ in running.values():
            proc.terminate()
        for proc, _, _ in running.values():
            proc.join(10)
