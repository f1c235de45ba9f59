"""The run directory: one owner at a time, the resolved config, round and epoch checkpoints, summary.json.

A Store knows files, not models: it saves and loads state dicts, masks, optimizer state and JSON records. The
directory is locked (an exclusive `flock` on DIR/.lock, released by the OS when the process dies, even by kill -9)
from `open` until `close`; a second process gets a one-line error naming the holder's pid. Only a Store that
`writes` touches the disk: under torchrun every rank but 0 reads and never writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from prunekit import checkpoint, run_files
from prunekit import config as config_mod
from prunekit.config import Config
from prunekit.errors import UserError
from prunekit.export.safety import atomic_write_text, one_line
from prunekit.pruning.masks import Masks

LOCK = ".lock"


class Store:
    """Files of one run directory. Paths are fixed by the run-directory contract (DESIGN.md)."""

    def __init__(self, out: str | Path, writes: bool = True) -> None:
        self.out = Path(out)
        self.ck = self.out / "checkpoints"
        self.writes = writes
        self._lock_fd: int | None = None

    # --- ownership -----------------------------------------------------------------------------------------
    def open(self, cfg: Config) -> None:
        """Create the directory and take its lock (when this Store writes), then refuse it if it holds a run of a
        different config. Nothing else is written: `claim` records the config once the run is known to start."""
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
        path = self.out / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot lock run directory {self.out}: {e.strerror or one_line(e)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(
                f"run directory {self.out} is in use by process {holder}; wait for it to finish or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

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
        return self.round_path(index).exists()

    def load(self, path: Path) -> tuple[dict[str, Tensor], Masks, dict[str, Any], dict[str, Any]]:
        """(state, masks, record, optimizer entries) of a checkpoint of this run."""
        return checkpoint.load(path)

    def record(self, index: int) -> dict[str, Any]:
        """The JSON record of a finished round, read from its file's header alone."""
        return checkpoint.read_record(self.round_path(index))

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
        return run_files.write(self.out, cfg, arch, device, indices, extra=extra, write=self.writes)
