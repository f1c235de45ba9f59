"""Bounds on a model file's prunekit metadata, checked before any of it is used.

The metadata is JSON inside the safetensors header, so it is as hostile as the file. Before parsing: at most
MAX_BYTES of text and MAX_CONTAINERS objects and lists (13 million empty objects in a 39 MB header took 10 s and
2.2 GB to parse). While parsing: at most 32 levels of nesting (common.safe_text). After: every number outside the
user's free-form `extra` is finite and within MAX_INT (an `Infinity` width used to end in an OverflowError), and every
shape is a short list of integral sizes whose product stays within MAX_NUMEL.
"""

from __future__ import annotations

import math
import os
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, parse_json, short

MAX_BYTES = 16 << 20  # a header's metadata: ~200 bytes per tensor, plus the run's config
MAX_CONTAINERS = 500_000  # objects and lists (a tensor table entry holds 2-3)
MAX_INT = 2**53  # larger integers are no size, count or width of a real network
MAX_NUMEL = 2**40  # values of one tensor
MAX_RANK = 16
ENCODINGS = ("dense", "alias", "bitmask", "gaps8", "gaps16", "nm")


def parse_meta_text(text: str, source: str | os.PathLike[str]) -> Any:
    """The metadata JSON of `source`, bounded in size, containers and depth, with every number checked."""
    if len(text) > MAX_BYTES:
        raise UserError(f"{source}: its prunekit metadata is {len(text):,} characters, more than {MAX_BYTES:,}")
    containers = text.count("{") + text.count("[")
    if containers > MAX_CONTAINERS:
        raise UserError(
            f"{source}: its prunekit metadata holds {containers:,} objects and lists, more than {MAX_CONTAINERS:,}; "
            "the file is damaged"
        )
    meta = parse_json(text, f"{source}: prunekit metadata", allow_nan=True)
    if isinstance(meta, dict):
        check_numbers({k: v for k, v in meta.items() if k != "extra"}, source)
        if isinstance(meta.get("tensors"), dict):
            check_entries(meta["tensors"], source)
    return meta


def check_entries(tensors: dict[str, Any], source: str | os.PathLike[str]) -> None:
    """The tensor table's dtypes, encodings and counts, checked before any network is built for the file (a complex
    dtype, say, was refused only after the network's memory was spent)."""
    from prunekit.common.example_spec import DTYPES

    for name, entry in tensors.items():
        where = f"{source}: tensor {clip(str(name), 60)!r}"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: its entry is {short(entry, 30)}, not an object; the file is damaged")
        for key in ("dtype", "stored_dtype"):
            if key in entry and entry[key] not in DTYPES:
                raise UserError(f"{where}: {key} {short(entry[key], 30)} is not one prunekit writes; damaged file")
        if entry.get("encoding") not in ENCODINGS:
            raise UserError(f"{where}: encoding {short(entry.get('encoding'), 30)} is unknown; the file is damaged")
        shape = check_shape(entry.get("shape"), source, f"tensors.{clip(str(name), 60)}.shape")
        nnz = entry.get("nnz")
        if nnz is not None and not (
            isinstance(nnz, int) and not isinstance(nnz, bool) and 0 <= nnz <= math.prod(shape)
        ):
            raise UserError(f"{where}: nnz {short(nnz, 30)} is not a count of its values; the file is damaged")


def check_numbers(value: Any, source: str | os.PathLike[str]) -> None:
    """Every number in `value` finite and at most MAX_INT in size; every `shape` list a valid tensor shape."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        key, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((f"{key}.{k}" if key else str(k), c) for k, c in v.items())
            if isinstance(v.get("shape"), list):
                check_shape(v["shape"], source, f"{key}.shape" if key else "shape")
        elif isinstance(v, list):
            stack.extend((f"{key}[{i}]", c) for i, c in enumerate(v))
        elif isinstance(v, float) and not (math.isfinite(v) and abs(v) <= MAX_INT):
            raise UserError(f"{source}: metadata {clip(key, 80)} is {short(v, 20)}, not a finite number; damaged file")
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
            raise UserError(f"{source}: metadata {clip(key, 80)} is {short(v, 20)}, out of range; the file is damaged")


def check_shape(shape: Any, source: str | os.PathLike[str], key: str) -> list[int]:
    """`shape` as a list of ints: each an integer >= 0 (integral floats such as 3.0 are not), rank <= MAX_RANK,
    product <= MAX_NUMEL."""
    ok = isinstance(shape, list) and len(shape) <= MAX_RANK
    ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_INT for d in shape)
    if ok and math.prod(shape) > MAX_NUMEL:
        ok = False
    if not ok:
        raise UserError(f"{source}: metadata {clip(key, 80)} is {short(shape, 40)}, not a tensor shape; damaged file")
    return list(shape)
