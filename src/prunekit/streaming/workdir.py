"""The directory a streamed prune writes into until it is complete, and what a rerun resumes from.

`OUT.prunekit-partial/` beside the output holds the block shards written so far, the calibration hidden states that
enter the next block (`stream/hidden-K.safetensors`) and `stream/progress.json` (the settings and how many blocks
are done). Each is written to a temporary file and renamed, and the progress record last, so a process killed at
any instant leaves a state from which the next run continues after the last block recorded, with identical bytes.
The finished checkpoint is renamed to OUT in one step: OUT never holds half a checkpoint. One process at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prunekit.common.atomic import atomic_write_text
from prunekit.common.errors import UserError
from prunekit.streaming.safetensors_files import read_header, read_tensor, write_file, write_unfilled

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

SUFFIX = ".prunekit-partial"


def partial_dir(out: Path) -> Path:
    return out.parent / f"{out.name}{SUFFIX}"


class WorkDir:
    """The partial output directory of one streamed prune (see the module docstring)."""

    def __init__(self, out: Path) -> None:
        self.out, self.path = out, partial_dir(out)
        self.state = self.path / "stream"
        self._lock: Any = None

    def start(self, settings: dict[str, Any]) -> int:
        """Blocks already done by an earlier run of the same settings (0 for a fresh start); takes the lock."""
        try:
            self.state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        self._take_lock()
        progress = self.state / "progress.json"
        if not progress.is_file():
            self.record(0, settings)
            return 0
        try:
            record = json.loads(progress.read_text())
            done, before = int(record["blocks_done"]), record["settings"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{progress} is damaged: delete {self.path} to start again") from None
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise UserError(
                f"{self.path} holds an unfinished prune with other settings ({', '.join(changed)} differ): "
                "rerun it as it was, or delete that directory"
            )
        return done

    def _take_lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        self._lock = (self.state / "lock").open("a")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise UserError(f"another process is writing {self.path}: wait for it to end") from None

    def record(
        self,
        blocks_done: int,
        settings: dict[str, Any],
        seconds: list[float] = (),
        layers: list[dict] = (),
        owl_ratios: dict[str, float] | None = None,
    ) -> None:
        """The progress record: blocks done, settings, each done block's seconds and layer counts, OWL's ratios."""
        record = {"blocks_done": blocks_done, "settings": settings, "block_seconds": list(seconds)}
        record |= {"layers": list(layers), "owl_ratios": owl_ratios}
        atomic_write_text(self.state / "progress.json", json.dumps(record))

    def progress(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((self.state / "progress.json").read_text()))
        return {}

    def hidden_path(self, block: int) -> Path:
        return self.state / f"hidden-{block}.safetensors"

    def save_hidden(self, block: int, hidden: list[Tensor]) -> None:
        write_file(self.hidden_path(block), [(str(i), h) for i, h in enumerate(hidden)])

    def load_hidden(self, block: int, on_disk: bool) -> list[Tensor]:
        """The hidden states entering `block`: read into memory, or memory-mapped from the file (`on_disk`)."""
        path = self.hidden_path(block)
        if not path.is_file():
            raise UserError(f"{path} is missing: delete {self.path} to start again")
        entries, _ = read_header(path)
        order = sorted(entries, key=int)
        if not on_disk:
            return [read_tensor(entries[k], k) for k in order]
        return [_mapped(path, entries[k].offset, entries[k].dtype, entries[k].shape) for k in order]

    def mapped_hidden(self, block: int, like: list[Tensor]) -> tuple[Path, list[Tensor]]:
        """A file shaped as `like` (not yet under its final name), and writable memory-mapped tensors into it."""
        path = self.hidden_path(block)
        tmp = path.with_name(f".{path.name}.filling")
        write_unfilled(tmp, [(str(i), h.dtype, tuple(h.shape)) for i, h in enumerate(like)])
        entries, _ = read_header(tmp)
        return tmp, [_mapped(tmp, entries[str(i)].offset, h.dtype, tuple(h.shape), "r+") for i, h in enumerate(like)]

    def commit_mapped(self, tmp: Path, block: int, hidden: list[Tensor]) -> None:
        for h in hidden:
            h._mmap_base.flush()  # type: ignore[attr-defined]
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.hidden_path(block))

    def forget_hidden(self, block: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.hidden_path(block).unlink()

    def finish(self) -> None:
        """Remove the resume state and rename the finished checkpoint to its final name."""
        shutil.rmtree(self.state, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
        try:
            os.replace(self.path, self.out)
        except OSError as exc:
            raise UserError(f"cannot rename {self.path} to {self.out}: {exc.strerror or exc}") from None


def _mapped(path: Path, offset: int, dtype: torch.dtype, shape: tuple[int, ...], mode: str = "c") -> Tensor:
    """A tensor backed by `path`'s bytes at `offset` (copy-on-write when read, shared when written)."""
    nbytes = dtype.itemsize
    for d in shape:
        nbytes *= d
    if not nbytes:
        return torch.empty(shape, dtype=dtype)
    array = np.memmap(path, dtype=np.uint8, mode=mode, offset=offset, shape=(nbytes,))
    tensor = torch.from_numpy(array).view(dtype).view(shape)
    tensor._mmap_base = array  # type: ignore[attr-defined]
    return tensor
