"""What identifies a streamed prune for a resume (the checkpoint's layout, the calibration inputs), and the memory
the machine has available (to decide where calibration activations live)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from prunekit.common.batches import Batch, Objective
from prunekit.streaming.checkpoint import Checkpoint


def available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def fingerprint_checkpoint(ckpt: Checkpoint) -> str:
    digest = hashlib.sha256()
    for name, e in ckpt.entries.items():
        digest.update(
            f"{name}|{e.path.name}|{e.offset}|{e.nbytes}|{e.dtype}|{e.shape}|{e.path.stat().st_size}\n".encode()
        )
    return digest.hexdigest()[:16]


def fingerprint_batches(batches: list[Batch], objective: Objective) -> str:
    digest = hashlib.sha256()

    def walk(value: Any) -> None:
        if isinstance(value, Tensor):
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                digest.update(str(key).encode())
                walk(value[key])
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)
        else:
            digest.update(repr(value).encode())

    for batch in batches:
        walk(objective.inputs(batch))
    return digest.hexdigest()[:16]
