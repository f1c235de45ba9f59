"""Writing files all-or-nothing, only ever to regular files, and cleaning what killed writes left behind.

A write fills a temporary file `.NAME.XXXXXXXX.tmp` beside the target (locked with flock while it is written),
fsyncs it and renames it over the target. A process killed mid-write leaves its temporary file; the next write into
the same directory removes such leftovers when no live process holds their lock, so only files that prunekit made
and nobody is writing are deleted, and a clean exit never leaves one. A target that is a device node, a FIFO, a
socket or a directory (or a symlink to one) is refused: renaming over /dev/null would replace the device with a file.
Operating-system errors (read-only directory, full disk, a file where a directory should be) are `UserError`s of
one line that name the path and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from prunekit.common.errors import UserError

try:  # POSIX; elsewhere leftovers are simply not cleaned
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

STALE_SECONDS = 60.0
_KINDS = {
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISSOCK: "a socket",
    stat.S_ISDIR: "a directory",
}
_FIXES = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f): raise the limit or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write elsewhere",
    errno.EACCES: "permission denied: choose a directory you can write to",
    errno.EPERM: "permission denied: choose a directory you can write to",
    errno.EROFS: "the file system is read-only: choose another location",
    errno.ENOTDIR: "a file stands where a directory is needed: choose another path",
    errno.EEXIST: "a file stands where a directory is needed: choose another path",
    errno.EISDIR: "it is a directory: give a file path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def os_error(path: str | os.PathLike[str], exc: OSError, doing: str = "cannot write") -> UserError:
    """One line for an operating-system error on `path`, with what to do about it."""
    why = _FIXES.get(exc.errno or 0, exc.strerror or str(exc))
    where = os.fspath(path) if path else ""
    return UserError(f"{doing} {where}: {why}" if where else f"a read or write failed: {why}")


def check_target(path: str | os.PathLike[str]) -> Path:
    """The regular file to write for `path`: refuses empty paths and special files; follows a symlink to its target."""
    if not os.fspath(path):
        raise UserError("the output path is empty: give a file name")
    path = Path(path)
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise os_error(path, exc) from None
    for test, kind in _KINDS.items():
        if test(mode):
            via = f" (through the symlink {path})" if real != path else ""
            raise UserError(f"{real}{via} is {kind}; prunekit writes only regular files: give a file path")
    return real


def atomic_write(path: str | os.PathLike[str], write_fn: Callable[[BinaryIO], object]) -> Path:
    """Write a file all-or-nothing: ``write_fn`` fills a temp file beside ``path``, then fsync and rename.

    If ``write_fn`` raises, the temp file is removed and any existing file at ``path`` is left untouched.
    """
    path = check_target(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = _create(path)
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise os_error(path, exc) from None
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Atomically replace ``path`` with ``text`` (e.g. summary.json after every round)."""
    return atomic_write_bytes(path, text.encode(encoding))


TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # `.NAME.XXXXXXXX.tmp`, what tempfile.mkstemp makes below


def clean_stale(path: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files (`.NAME.XXXXXXXX.tmp`) that killed writes left in `path`'s directory: regular files
    no live process holds the write lock of. `older_than` is kept for callers; the lock, not the age, decides (a
    writer locks its file before writing, and checks after locking that it is still there: see `_create`)."""
    del older_than
    if fcntl is None or not path.parent.is_dir():
        return []
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if TEMP.match(entry.name) and entry.is_file(follow_symlinks=False) and _remove_unlocked(entry.path):
                removed.append(Path(entry.path))
    return removed


def _remove_unlocked(path: str) -> bool:
    """Unlink `path` if no live process holds its lock, holding the lock while unlinking (a killed writer's is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _create(path: Path) -> tuple[int, str]:
    """A locked temporary file beside `path`. A cleaner may unlink a file between its creation and its lock; then
    the lock holds an unlinked file, which the check after locking notices, and a new one is made."""
    for _ in range(5):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when closed, or by the OS when we are killed
        try:
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)
    raise OSError(errno.EAGAIN, "temporary files keep disappearing", str(path.parent))


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; not every platform lets a directory be opened, hence best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
