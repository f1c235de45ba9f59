"""A model file's stored data checked against its tensor table, before any network is built or tensor decoded.

A 4 MB file could claim a 232 MiB network and be refused only after that network was built and its tensors decoded
(0.7-1.4 CPU s, +250-750 MiB). Two passes now come first, so that any refusal costs what reading the file costs:

1. The layout (safetensors header only, no data): every entry's stored pieces exist with the sizes its shape and
   encoding imply (a dense tensor at its shape, a bitmask of ceil(numel / 8) bytes, an N:M index of its group count,
   gaps with at least one entry per kept value and at most numel / 255 fillers, values or low-bit codes for exactly
   `nnz` values), no stored tensor is left undescribed, and the decoded size fits the budget.
2. The indices and codes, read one at a time and walked in chunks of a million entries: gaps end inside the tensor,
   every index keeps exactly `nnz` positions, N:M codes name a subset, low-bit codes stay on their grid.

What is left for decoding can only fail for memory. The size a sparse file may decode to is bounded by a budget, not
by its bytes: an all-pruned tensor's gaps index is legitimately empty, so a tiny file may describe a large network.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError

from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, short
from prunekit.export.arch import RAISE_HINT
from prunekit.export.bitpack import GAP_DTYPES, NM_GROUP_SIZES, _subsets, code_bits, nm_nbytes
from prunekit.pruning import lowbit

CHUNK = 1 << 20
_INDEX = {"bitmask": ("::mask", "U8"), "gaps8": ("::gaps", "U8"), "gaps16": ("::gaps", "U16"), "nm": ("::nm", "U8")}
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def check_stored(handle: Any, meta: dict, source: str | os.PathLike[str], limit: int | None) -> int:
    """Check the file open as `handle` (safetensors.safe_open) against its parsed metadata; return the bytes its
    tensors decode to. `limit`: refuse a file decoding to more (None: no budget, e.g. a builder the user chose)."""
    layout = {k: (handle.get_slice(k).get_dtype(), list(handle.get_slice(k).get_shape())) for k in handle.keys()}  # noqa: SIM118
    used: set[str] = set()
    entries = {str(n): e for n, e in meta["tensors"].items() if e.get("encoding") != "alias"}
    decoded = sum(_decoded_bytes(e, f"{source} is corrupted: tensor {clip(n, 60)!r}") for n, e in entries.items())
    if limit is not None and decoded > limit:
        raise UserError(
            f"{source} would decode to {decoded / 2**20:,.0f} MiB of tensors from a file of "
            f"{os.path.getsize(source) / 2**20:,.1f} MiB, more than the {limit / 2**20:,.0f} MiB allowed; {RAISE_HINT}"
        )
    for name, entry in entries.items():
        where = f"{source} is corrupted: tensor {clip(name, 60)!r}"
        for key, dtype, size in _pieces(name, entry, math.prod(entry["shape"]), where):
            if key not in layout:
                raise UserError(f"{where}: stored tensor {clip(key, 80)!r} is missing")
            found_dtype, shape = layout[key]
            found = shape if isinstance(size, list) else math.prod(shape)
            if (dtype and found_dtype != dtype) or not _fits(found, size, shape):
                raise UserError(
                    f"{where}: stored tensor {clip(key, 80)!r} ({found_dtype} {shape}) does not fit a tensor of shape "
                    f"{entry['shape']} ({entry['encoding']}, nnz {entry.get('nnz')}), which needs "
                    f"{dtype or 'any'} {_wanted(size)}"
                )
            used.add(key)
    for name, entry in meta["tensors"].items():  # a tied tensor: another name of a stored one of its shape
        target = entries.get(str(entry.get("of"))) if entry.get("encoding") == "alias" else entry
        if target is None or target["shape"] != entry["shape"]:
            where = f"{source} is corrupted: tensor {clip(str(name), 60)!r}"
            raise UserError(f"{where}: alias of {short(entry.get('of'), 40)}, not a stored tensor of its shape")
    extra = sorted(set(layout) - used)
    if extra:
        raise UserError(f"{source}: tensors not described by the header: {clip(', '.join(extra[:3]), 120)}")
    for name, entry in meta["tensors"].items():
        _check_data(handle, str(name), entry, f"{source} is corrupted: tensor {clip(str(name), 60)!r}")
    return decoded


def _decoded_bytes(entry: dict, where: str) -> int:
    """What the entry's tensor takes decoded, with its bool mask if the file kept one."""
    if "dtype" not in entry:
        raise UserError(f"{where}: its entry has no dtype")
    numel = math.prod(entry["shape"])
    return numel * torch.empty(0, dtype=getattr(torch, entry["dtype"])).element_size() + numel * bool(
        entry.get("masked")
    )


def _pieces(name: str, entry: dict, numel: int, where: str) -> list[tuple[str, str | None, Any]]:
    """(stored key, safetensors dtype or None for any, size) of every piece the entry needs; a size is an exact
    shape (list), an element count (int) or an inclusive (low, high) range of counts."""
    encoding, nnz, bits = entry["encoding"], entry.get("nnz"), entry.get("bits")
    if "bits" in entry and not (type(bits) is int and lowbit.MIN_BITS <= bits <= lowbit.MAX_BITS):
        raise UserError(
            f"{where}: bits must be an integer in [{lowbit.MIN_BITS}, {lowbit.MAX_BITS}], got {short(bits, 20)}"
        )
    if encoding != "dense" and not isinstance(nnz, int):
        raise UserError(f"{where}: a {encoding} entry needs its nnz")
    count = numel if encoding == "dense" else nnz
    if bits is not None:  # sizes and values checked by _check_codes
        values = [(name + "::codes", None, None), (name + "::scale", None, None)]
    elif encoding == "dense":
        return [(name, None, list(entry["shape"]))]
    else:
        values = [(name + "::values", None, [count])]
    if encoding == "dense":
        return values
    suffix, dtype = _INDEX[encoding]
    if encoding == "bitmask":
        size: Any = (numel + 7) // 8
    elif encoding == "nm":
        size = nm_nbytes(entry["shape"], _layout(entry, where))
    else:  # one entry per kept value, plus fillers of 255 (65,535) positions each
        size = (nnz, nnz + numel // int(np.iinfo(GAP_DTYPES[encoding]).max))
    return [*values, (name + suffix, dtype, size)]


def _layout(entry: dict, where: str) -> tuple[int, int, int]:
    layout, shape = entry.get("nm"), entry["shape"]
    if not (isinstance(layout, list) and len(layout) == 3 and all(type(v) is int for v in layout)):
        raise UserError(f"{where}: nm encoding needs [n, m, axis] integers, got {short(layout, 30)}")
    n, m, axis = layout
    inputs = shape[0] if axis == 0 else math.prod(shape[1:])
    if not (1 <= n < m and m in NM_GROUP_SIZES and axis in (0, 1)) or (axis == 0 and len(shape) != 2) or inputs % m:
        raise UserError(f"{where}: unsupported N:M layout {n}:{m} along axis {axis} for shape {shape}")
    return n, m, axis


def _fits(found: Any, size: Any, shape: list[int]) -> bool:
    if size is None:
        return True
    if isinstance(size, tuple):
        return len(shape) == 1 and size[0] <= found <= size[1]
    if isinstance(size, list):
        return found == size
    return len(shape) == 1 and found == size


def _wanted(size: Any) -> str:
    if isinstance(size, tuple):
        return f"[{size[0]:,} to {size[1]:,}]"
    return str(size) if isinstance(size, list) else f"[{size:,}]"


def _check_data(handle: Any, name: str, entry: dict, where: str) -> None:
    """The index and low-bit codes of one entry, walked in chunks: positions, counts and codes as its entry says."""
    encoding, nnz = entry.get("encoding"), entry.get("nnz")
    try:
        if encoding in _INDEX:
            data = handle.get_tensor(name + _INDEX[encoding][0]).numpy()
            kept = _kept(data, encoding, entry)
            if kept != nnz:
                raise UserError(f"{where}: its index keeps {kept:,} positions, its entry says nnz {nnz:,}")
        if "bits" in entry:
            count = nnz if encoding != "dense" else math.prod(entry["shape"])
            scale = handle.get_tensor(name + "::scale")
            if scale.dtype != torch.float32 or scale.numel() != 1 or not (math.isfinite(scale) and float(scale) > 0):
                raise ValueError("the scale of low-bit codes must be one finite positive float32")
            _check_codes(handle.get_tensor(name + "::codes"), entry["bits"], count, where)
    except ValueError as exc:
        raise UserError(f"{where}: {clip(str(exc), 100)}") from None
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise UserError(f"{where}: its stored index cannot be read ({clip(str(exc), 80)})") from exc


def _kept(data: np.ndarray, encoding: str, entry: dict) -> int:
    """How many positions the index keeps; ValueError when it points past the tensor's end or holds a bad code."""
    numel = math.prod(entry["shape"])
    if encoding == "bitmask":
        tail = numel % 8
        if tail and data.size and int(data[-1]) >> tail:
            raise ValueError(f"bitmask sets padding bits past the {numel:,} elements")
        return sum(int(_POPCOUNT[data[i : i + CHUNK]].sum()) for i in range(0, data.size, CHUNK))
    if encoding == "nm":
        n, m, _ = _layout(entry, "")
        k, table = code_bits(n, m), len(_subsets(n, m)[0])
        groups = numel // m
        step = 1 << 16  # groups per chunk (of up to 14-bit codes): a multiple of 8 ends on a byte
        for i in range(0, groups, step):
            count = min(step, groups - i)
            raw = data[i * k // 8 : i * k // 8 + math.ceil(count * k / 8)]
            bits = np.unpackbits(raw, count=count * k, bitorder="little").reshape(count, k).astype(np.int64)
            if int((bits << np.arange(k)).sum(axis=1).max(initial=0)) >= table:
                raise ValueError(f"{n}:{m} index holds a code past the {table} subsets")
        return groups * n
    largest = int(np.iinfo(GAP_DTYPES[encoding]).max)
    kept, position, last = 0, -1, -1  # last: the position of the last kept value so far
    for i in range(0, data.size, CHUNK):
        steps = data[i : i + CHUNK].astype(np.int64)
        nonzero = np.flatnonzero(steps)
        steps[steps == 0] = largest
        if nonzero.size:
            kept += nonzero.size
            last = position + int(steps[: nonzero[-1] + 1].sum())
        position += int(steps.sum())
    if last >= numel:
        raise ValueError(f"{encoding} index points past the end of a tensor of {numel:,} elements")
    return kept


def _check_codes(codes: torch.Tensor, bits: int, count: int, where: str) -> None:
    """`count` codes of `bits` bits, at most 2 * levels each, unpacked a chunk at a time."""
    expected = math.ceil(count * bits / 8)
    if codes.dtype != torch.uint8 or codes.ndim != 1 or codes.numel() != expected:
        raise ValueError(f"low-bit codes must be {expected} uint8 bytes for {count} {bits}-bit values")
    data, high = codes.numpy(), lowbit.levels(bits)
    for i in range(0, count, lowbit.CHUNK):
        n = min(lowbit.CHUNK, count - i)
        start = i * bits // 8
        codes = lowbit.unpack(torch.from_numpy(data[start : start + math.ceil(n * bits / 8)].copy()), bits, n)
        if int(codes.max()) > 2 * high:
            raise UserError(f"{where}: a {bits}-bit code is above {2 * high}")
