"""How many CPU threads PyTorch should use when the config leaves `threads: null`.

PyTorch's default is one thread per logical core. On a machine that other processes already keep busy, those
threads fight for the same cores and an epoch can run ten times slower than on one thread (measured on a loaded
2-core machine: 55 s with the default, 5.6 s with one thread). So the default here is the physical cores (never more
than PyTorch's own default), and a single thread, with a one-line warning, when the 1-minute load average says the
cores are already taken.
"""

from __future__ import annotations

import os

import torch


def physical_cores() -> int:
    """Physical cores available to this process (Linux: distinct (package, core) pairs of the allowed CPUs)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as pkg, open(f"{base}/core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))  # no topology (containers, other systems): count logical CPUs
    return max(1, len(cores))


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def choose_threads(requested: int | None) -> tuple[int, str | None]:
    """(threads to use, a warning or None). An explicit request is honoured as it is."""
    if requested is not None:
        return requested, None
    cores = physical_cores()
    usable = max(1, min(cores, torch.get_num_threads()))
    load = load_average()
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if load is not None and usable > 1 and load + usable > logical + 0.5:
        return 1, (
            f"the machine is busy (load average {load:.1f} on {logical} CPUs): using 1 thread instead of {usable}; "
            "set threads in the config to choose"
        )
    return usable, None
