"""`prunekit sweep`: validate every point, skip finished runs, run the rest on an executor, write one report.

The sweep directory holds one ordinary run directory per point, logs/<point>.log with each run's progress, and
report.md/report.html over all runs (seeds of one config aggregated as mean ± std). It is locked like a run
directory. Cores: the local executor runs `workers` processes (default: one per core, at most one per run to do)
and gives each run cores // workers torch threads, unless the run's config sets `threads`; Ray gives each run the
CPUs it asks for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prunekit import config as config_mod
from prunekit.common.errors import UserError
from prunekit.common.safety import atomic_write_text
from prunekit.distributed import cores as machine_cores
from prunekit.store import summary as run_summary
from prunekit.store.directory import lock_directory, unlock
from prunekit.sweep.spec import Point, Sweep

Say = Callable[[str], None]


def finished(point: Point, run_dir: Path) -> bool:
    """Whether `run_dir` holds this point's finished run; a run of another config there is an error."""
    saved = run_dir / "config.yaml"
    if not saved.exists():
        return False
    diff = config_mod.differences(config_mod.load(saved), point.cfg)
    if diff:
        raise UserError(
            f"sweep point {point.name}: {run_dir} holds a run with a different config (differs in: "
            f"{', '.join(diff)}); delete it or change the sweep"
        )
    if not (run_dir / "summary.json").is_file():
        return False
    try:  # checked (prunekit.store.summary): a damaged summary is a run to resume, which rewrites it from checkpoints
        return run_summary.load(run_dir).get("complete") is True
    except UserError:
        return False


def _job(point: Point, out: Path, threads: int | None) -> dict[str, Any]:
    return {
        "name": point.name,
        "config": point.cfg.to_dict(),
        "out": str(out / point.name),
        "log": str(out / "logs" / f"{point.name}.log"),
        "threads": threads,
    }


def _outcome_line(outcome: dict[str, Any]) -> str:
    if not outcome["ok"]:
        return f"{outcome['name']}: FAILED: {outcome['error']} (log: {outcome['log']})"
    metric, value, s = outcome.get("metric"), outcome.get("final_metric"), outcome.get("final_sparsity")
    shown = "-" if value is None else (f"{value:.2%}" if metric == "accuracy" else f"{value:.4g}")
    sparsity = "-" if s is None else f"{s:.2%}"
    return f"{outcome['name']}: done, final {metric} {shown} at sparsity {sparsity} ({outcome.get('seconds', 0):.0f} s)"


def run_sweep(
    sweep: Sweep,
    out: Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    say: Say = print,
) -> list[dict[str, Any]]:
    """Run (or resume) every point; returns the outcomes of the runs started now (finished ones are skipped)."""
    if executor not in ("local", "ray"):
        raise UserError(f"unknown executor {executor!r}: local | ray")
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if executor == "ray":
        from prunekit.sweep.ray_executor import check_available

        check_available()
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory; give a directory for the sweep")
    done = {p.name for p in sweep.points if finished(p, out / p.name)}  # validates existing run directories first
    out.mkdir(parents=True, exist_ok=True)
    fd = lock_directory(out, "sweep directory", "--out")
    try:
        atomic_write_text(out / "sweep.json", json.dumps({p.name: p.overrides for p in sweep.points}, indent=1))
        todo = [p for p in sweep.points if p.name not in done]
        cores = machine_cores()
        head = f"sweep {sweep.name}: {len(sweep.points)} runs, {len(done)} finished (skipped), {len(todo)} to run"
        outcomes: list[dict[str, Any]] = []

        def report(outcome: dict[str, Any]) -> None:
            outcomes.append(outcome)
            say(f"[{len(outcomes)}/{len(todo)}] {_outcome_line(outcome)}")

        if todo and executor == "local":
            n = min(workers or cores, len(todo))
            threads = max(cores // n, 1)
            fixed = sorted({p.cfg.threads for p in todo if p.cfg.threads is not None})
            note = f"; configs that set threads keep theirs ({', '.join(map(str, fixed))})" if fixed else ""
            say(f"{head} on {n} worker process{'es' * (n != 1)}: {cores} cores, {threads} torch thread(s) each{note}")
            from prunekit.sweep.local import run_local

            run_local([_job(p, out, threads) for p in todo], n, report)
        elif todo:
            from prunekit.sweep.ray_executor import run_ray

            say(head)
            jobs = [_job(p, out, max(int(cpus_per_run), 1)) for p in todo]
            run_ray(jobs, report, say, address=address, cpus=cpus_per_run, gpus=gpus_per_run, cores=cores)
        else:
            say(head)
        _write_report(sweep, out, say)
        return outcomes
    finally:
        unlock(fd)


def _write_report(sweep: Sweep, out: Path, say: Say) -> None:
    from prunekit.report import write_report

    dirs = [out / p.name for p in sweep.points if (out / p.name / "summary.json").exists()]
    if not dirs:
        say("no run has finished a round yet: no report")
        return
    path = write_report(dirs, out, title=f"sweep {sweep.name}: {out}")
    say(f"report: {path} and {path.with_suffix('.html')}")
