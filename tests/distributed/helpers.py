"""Starting torchrun from tests: two CPU processes (gloo), one thread each, on a free port of this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def torchrun_command(*args: str, procs: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *args]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def torchrun(*args: str, procs: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        torchrun_command(*args, procs=procs), env=env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def rank_pids(parent: int) -> dict[int, int]:
    """RANK -> pid of the worker processes below `parent` (torchrun's agent starts them as its children)."""
    out: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                out[int(item[5:])] = int(proc.name)
    return out
