"""The Ray executor: every run a Ray task with its own CPUs/GPUs, on a Ray this command starts or an existing cluster.

The task is `run_point`, the function the local executor runs, with `max_calls=1` (a fresh worker process per run).
On a cluster every node needs prunekit installed and the sweep directory on a filesystem they all see (an absolute
--out on shared storage): each task writes its own run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prunekit.common.errors import UserError
from prunekit.sweep.local import Report
from prunekit.sweep.point import run_point


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'prunekit[ray]'") from None
    return ray


def check_available() -> None:
    _ray()


def run_ray(
    jobs: list[dict[str, Any]],
    report: Report,
    say: Callable[[str], None],
    *,
    address: str | None,
    cpus: float,
    gpus: float,
    cores: int,
) -> None:
    """Run every job as a Ray task, `say`ing first where. Starts (and stops) a local Ray with `cores` CPUs when no
    address is given."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address is None:
            kwargs["num_cpus"] = cores
        ray.init(address=address, **kwargs)
    try:
        resources = ray.cluster_resources()
        say(
            f"Ray {'started here' if address is None else 'at ' + address}: {resources.get('CPU', 0):g} CPUs, "
            f"{resources.get('GPU', 0):g} GPUs; {cpus:g} CPU and {gpus:g} GPU per run"
        )
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_calls=1, max_retries=0)(run_point)
        refs = {task.remote(job): job for job in jobs}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                job = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # the task's worker died (killed, out of memory): this run failed
                    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    outcome = {"name": job["name"], "ok": False, "error": f"Ray task failed: {message}"}
                    outcome["log"] = job["log"]
                report(outcome)
    finally:
        if started:
            ray.shutdown()
