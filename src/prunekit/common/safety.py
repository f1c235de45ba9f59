"""Know what a file is before touching it, and refuse pickles. (Atomic writes live in prunekit.common.atomic.)

Sniffing only reads magic bytes; nothing here ever unpickles or imports anything from a file.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from prunekit.common.atomic import atomic_write, atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)
from prunekit.common.errors import UserError

MAX_HEADER_BYTES = 100_000_000  # safetensors refuses larger headers too
_PICKLE_OPCODES = frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes)
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")
_NO_UNPICKLE = (
    "prunekit never unpickles files (they can run code). Re-save it as safetensors, "
    "or import a plain state dict with prunekit.export.import_torch_state_dict"
)


def sniff(path: str | os.PathLike[str]) -> str:
    """Identify a file by its first bytes: "safetensors", "pickle", "zip", "gzip" or "unknown"."""
    with open(path, "rb") as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
        f.seek(max(size - 1, 0))
        last = f.read(1)
    if len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= MAX_HEADER_BYTES:
        return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head and head[0] in _PICKLE_OPCODES and last == b".":  # protocol 0/1 pickles end with STOP
        return "pickle"
    return "unknown"


def refusal(path: str | os.PathLike[str], kind: str) -> str:
    """One line saying what a non-safetensors file is and what to do with it."""
    name = os.fspath(path)
    if kind == "pickle":
        return f"{name} is a pickle file; {_NO_UNPICKLE}"
    if kind == "zip":
        return f"{name} is a zip archive (torch.save's format, which holds a pickle); {_NO_UNPICKLE}"
    if kind == "gzip":
        return f"{name} is gzip-compressed; prunekit reads uncompressed safetensors files: decompress it first"
    return f"{name} is not a safetensors file (unrecognised content); prunekit reads only safetensors files"


def require_safetensors(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` if it looks like a complete safetensors file, else raise a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a safetensors file")
    if not path.is_file():  # a FIFO would block the read below, a device could be endless
        raise UserError(f"{path} is not a regular file; give a safetensors file")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path} is empty; it is not a model file")
    try:
        kind = sniff(path)
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
    except OSError as exc:
        raise UserError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if kind != "safetensors":
        raise UserError(refusal(path, kind))
    if 8 + header_len > size:
        raise UserError(
            f"{path} is a truncated safetensors file: its header alone needs {8 + header_len} bytes "
            f"but the file has {size}; export it again"
        )
    return path


def import_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A plain PyTorch state dict (``{name: tensor}`` or ``{"state_dict": {...}}``) from a .pt/.pth file.

    The one place a pickle is read, and only by ``torch.load(weights_only=True)``, which refuses anything but
    tensors and plain containers, so a hostile file raises instead of running code.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if sniff(path) == "safetensors":
        raise UserError(f"{path} is a safetensors file, not a PyTorch pickle; read it with prunekit.export.load")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it may not know; we refuse or succeed
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = next((line for line in lines if not line.startswith(_TORCH_BOILERPLATE)), one_line(exc))
        raise UserError(
            f"{path} holds more than tensors, so it was not unpickled ({why}); save only a state dict"
        ) from exc
    except Exception as exc:  # a corrupt zip or pickle surfaces as many exception types
        raise UserError(f"{path} is not a readable PyTorch file ({type(exc).__name__}: {one_line(exc)})") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise UserError(f"{path} is not a flat state dict: entry {key!r} is a {type(value).__name__}, not a tensor")
    return dict(obj)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message: errors reach the user as one line."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
