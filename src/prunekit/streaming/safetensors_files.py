"""safetensors files read one tensor at a time and written from tensors or from byte ranges of other files.

The format: an 8-byte little-endian header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}} plus an
optional `__metadata__`), then the data, each tensor's bytes at [begin, end) from the start of the data. A header
is checked before anything is read: its size is bounded, every dtype is known, every span matches its shape and the
spans tile the data exactly, which the file must hold in full (a truncated shard is refused by name). Reading a
tensor reads its bytes into a fresh tensor with one `readinto` (no memory map, so a shard's pages never count in the
process's resident memory); copying a tensor between files goes through a small buffer, whatever its size.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

from prunekit.common.atomic import atomic_write
from prunekit.common.errors import UserError

MAX_HEADER = 100 * 2**20
COPY_CHUNK = 16 * 2**20
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
NAMES = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class Entry:
    """Where one tensor lies: its file, absolute byte offset and length, dtype and shape."""

    path: Path
    offset: int
    nbytes: int
    dtype: torch.dtype
    shape: tuple[int, ...]


def read_header(path: Path) -> tuple[dict[str, Entry], dict[str, str]]:
    """The tensors of a safetensors file (name -> Entry) and its metadata, after checking the file is whole."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise UserError(f"{path} is not a safetensors file: it holds {size} bytes, fewer than a header needs")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise UserError(f"{path} is truncated or not a safetensors file: its header claims {n:,} bytes")
            raw = f.read(n)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise UserError(f"{path} is not a safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    start, entries, spans = 8 + n, {}, []
    for name, info in header.items():
        entries[name] = entry = _entry(path, name, info, start)
        spans.append((entry.offset - start, entry.offset - start + entry.nbytes, name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise UserError(f"{path} is inconsistent: tensor {name} starts at byte {begin} of the data, not {end}")
        end = stop
    if start + end != size:
        what = "truncated" if start + end > size else "inconsistent"
        held = size - start
        raise UserError(f"{path} is {what}: its header describes {end:,} bytes of data, the file holds {held:,}")
    return entries, {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def _entry(path: Path, name: str, info: object, start: int) -> Entry:
    try:
        dtype = DTYPES[info["dtype"]]  # type: ignore[index]
        shape = tuple(int(d) for d in info["shape"])  # type: ignore[index]
        begin, stop = (int(x) for x in info["data_offsets"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path} is not a safetensors file: tensor {name!r} has a malformed entry") from None
    count = 1
    for d in shape:
        if d < 0:
            raise UserError(f"{path}: tensor {name} has a negative dimension")
        count *= d
    if begin < 0 or stop - begin != count * dtype.itemsize:
        raise UserError(f"{path} is inconsistent: tensor {name} {list(shape)} spans {stop - begin} bytes")
    return Entry(path, start + begin, stop - begin, dtype, shape)


def read_tensor(entry: Entry, name: str = "") -> Tensor:
    """The tensor's bytes read into a new tensor."""
    out = torch.empty(entry.shape, dtype=entry.dtype)
    if entry.nbytes:
        view = out.reshape(-1).view(torch.uint8).numpy()
        try:
            with entry.path.open("rb") as f:
                f.seek(entry.offset)
                got = f.readinto(memoryview(view))
        except OSError as exc:
            raise UserError(f"cannot read {entry.path}: {exc.strerror or exc}") from None
        if got != entry.nbytes:
            raise UserError(f"{entry.path} is truncated: tensor {name or '?'} ends past the end of the file")
    return out


Source = Tensor | Entry


def write_file(path: Path, tensors: Iterable[tuple[str, Source]], metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file atomically, in the given order, from tensors or from other files' byte ranges."""
    items = list(tensors)
    raw = _header([(name, *_describe(source)) for name, source in items], metadata)

    def fill(f: BinaryIO) -> None:
        f.write(raw)
        for name, source in items:
            _write_source(f, source, name)

    return atomic_write(path, fill)


def write_unfilled(path: Path, specs: list[tuple[str, torch.dtype, tuple[int, ...]]]) -> None:
    """A file with the header of `specs` whose data is left as zeros (to be filled through a memory map)."""
    items = [(name, dtype, shape, dtype.itemsize * math.prod(shape)) for name, dtype, shape in specs]
    raw = _header(items, None)
    with path.open("wb") as f:
        f.write(raw)
        f.truncate(len(raw) + sum(item[3] for item in items))


def _header(items: list[tuple[str, torch.dtype, tuple[int, ...], int]], metadata: dict[str, str] | None) -> bytes:
    """The length prefix and the JSON header (padded to 8 bytes) of tensors laid out in order."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    begin = 0
    for name, dtype, shape, nbytes in items:
        header[name] = {"dtype": NAMES[dtype], "shape": list(shape), "data_offsets": [begin, begin + nbytes]}
        begin += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _describe(source: Source) -> tuple[torch.dtype, tuple[int, ...], int]:
    if isinstance(source, Entry):
        return source.dtype, source.shape, source.nbytes
    if source.dtype not in NAMES:
        raise UserError(f"cannot write a {source.dtype} tensor to safetensors")
    return source.dtype, tuple(source.shape), source.numel() * source.element_size()


def _write_source(f: BinaryIO, source: Source, name: str) -> None:
    if isinstance(source, Tensor):
        if source.numel():
            f.write(memoryview(source.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
        return
    left = source.nbytes
    with source.path.open("rb") as src:
        src.seek(source.offset)
        while left:
            chunk = src.read(min(left, COPY_CHUNK))
            if not chunk:
                raise UserError(f"{source.path} is truncated: tensor {name} ends past the end of the file")
            f.write(chunk)
            left -= len(chunk)
