"""The run directory: one owner at a time, the resolved config, round and epoch checkpoints, summary.json.

A Store knows files, not models: it saves and loads state dicts, masks, optimizer state and JSON records. The
directory is locked (an exclusive `flock` on DIR/.lock, released by the OS when the process dies, even by kill -9)
from `open` until `close`; a second process gets a one-line error naming the holder's pid. Only a Store that
`writes` touches the disk. Under torchrun only rank 0 touches the directory at all: it writes, and what it reads
(checkpoints, records, whether a file exists, the summary) is shared with the other ranks, so every rank makes the
same decisions and a multi-node run needs the directory only where rank 0 runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from prunekit import config as config_mod
from prunekit.common.atomic import os_error
from prunekit.common.errors import UserError
from prunekit.common.safety import atomic_write_text, one_line
from prunekit.config import Config
from prunekit.distributed import SOLO, World, share
from prunekit.pruning.masks import Masks
from prunekit.store import checkpoint
from prunekit.store import files as run_files

LOCK = ".lock"


class Store:
    """Files of one run directory. Paths are fixed by the run-directory contract (docs/design.md)."""

    def __init__(self, out: str | Path, writes: bool = True, world: World = SOLO) -> None:
        self.out = Path(out)
        self.ck = self.out / "checkpoints"
        self.world = world
        self.writes = writes and world.main
        self._lock_fd: int | None = None

    # --- ownership -----------------------------------------------------------------------------------------
    def open(self, cfg: Config) -> None:
        """Create the directory and take its lock (when this Store writes), then refuse it if it holds a run of a
        different config. Nothing else is written: `claim` records the config once the run is known to start."""
        share(lambda: self._open(cfg), self.world)

    def _open(self, cfg: Config) -> None:
        if self.writes and self._lock_fd is None:
            self._make_dirs()
            self._lock()
        saved = self.out / "config.yaml"
        if not saved.exists():
            return
        try:
            previous = config_mod.load(saved)
        except UserError as e:
            self.close()
            raise UserError(f"{saved} is damaged ({e}); delete the run directory or use another --out") from None
        diff = config_mod.differences(previous, cfg)
        if diff:
            self.close()
            raise UserError(
                f"{self.out} holds a run with a different config (differs in: {', '.join(diff)}); "
                "use another --out or delete the directory"
            )

    def claim(self, cfg: Config) -> None:
        """Write config.yaml: from now on the directory belongs to this config."""
        if self.writes:
            atomic_write_text(self.out / "config.yaml", config_mod.dump(cfg))

    def _make_dirs(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file, not a directory; give a directory for the run")
        try:
            self.ck.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create run directory {self.out}: {e.strerror or one_line(e)}") from None

    def _lock(self) -> None:
        self._lock_fd = lock_directory(self.out, "run directory", "--out")

    def close(self) -> None:
        if self._lock_fd is not None:
            unlock(self._lock_fd)
            self._lock_fd = None

    def is_dir(self) -> bool:
        return share(self.out.is_dir, self.world)

    def exists(self, path: Path) -> bool:
        """Whether a file of this run exists (rank 0's answer on every rank)."""
        return share(path.exists, self.world)

    # --- checkpoints ---------------------------------------------------------------------------------------
    def round_path(self, index: int) -> Path:
        return self.ck / f"round_{index}.safetensors"

    def epoch_path(self, index: int) -> Path:
        return self.ck / f"round_{index}.epoch.safetensors"

    def control_path(self, index: int) -> Path:
        return self.ck / f"round_{index}.control.safetensors"

    @property
    def rewind_path(self) -> Path:
        return self.ck / "rewind.safetensors"

    def has_round(self, index: int) -> bool:
        return self.exists(self.round_path(index))

    def load(self, path: Path) -> tuple[dict[str, Tensor], Masks, dict[str, Any], dict[str, Any]]:
        """(state, masks, record, optimizer entries) of a checkpoint of this run."""
        return tuple(share(lambda: list(checkpoint.load(path)), self.world))

    def record(self, index: int) -> dict[str, Any]:
        """The JSON record of a finished round, read from its file's header alone."""
        return share(lambda: checkpoint.read_record(self.round_path(index)), self.world)

    def save(
        self,
        path: Path,
        state: dict[str, Tensor],
        masks: Masks,
        record: dict[str, Any],
        optimizer_state: dict[str, Any] | None = None,
    ) -> None:
        if self.writes:
            checkpoint.save(path, state, masks, record, optimizer_state)

    def discard(self, path: Path) -> None:
        if self.writes:
            path.unlink(missing_ok=True)

    def write_summary(self, cfg: Config, arch: Any, device: str, indices: list[int], extra: dict | None = None) -> dict:
        """summary.json and rounds.csv rebuilt from the round files; returned (and written when this Store writes)."""
        return share(
            lambda: run_files.write(self.out, cfg, arch, device, indices, extra=extra, write=self.writes), self.world
        )


def lock_directory(path: Path, what: str, option: str) -> int:
    """An exclusive flock on PATH/.lock holding this pid (released by the OS when the process dies, even by kill -9);
    a second process gets a one-line error naming the holder. Returns the descriptor for `unlock`."""
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot lock {what} {path}: {e.strerror or one_line(e)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UserError(
            f"{what} {path} is in use by process {holder}; wait for it to finish or use another {option}"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError as e:  # a full disk: no room for the pid
        os.close(fd)
        raise os_error(path / LOCK, e) from None
    return fd


def unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
