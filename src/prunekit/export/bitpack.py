"""Compact encodings of a pruning mask: a packed bitmask or Deep-Compression-style index gaps.

Both encodings describe the True positions of a mask in row-major (C) order of the flattened tensor.

- ``bitmask``: ``np.packbits(mask.ravel(), bitorder="little")``; bit ``i`` (least significant first) of byte
  ``j`` is element ``8 * j + i``. The last byte is zero-padded. Size: ``ceil(numel / 8)`` bytes.
- ``gaps8`` / ``gaps16``: one unsigned entry (uint8 / uint16) per kept position holding the distance from the
  previous kept position (the first one counts from -1, so every real gap is >= 1). A gap larger than the
  largest entry ``M`` (255 / 65535) is written as filler entries of value 0, each meaning "advance by M, keep
  nothing", then the remainder. Fillers carry no value, so the values array always has exactly nnz entries.
- ``nm``: for a mask that keeps exactly N of every group of M consecutive inputs (an N:M pattern), one code per
  group: the rank of its set of kept positions among the C(M, N) subsets of range(M) in lexicographic order
  (``itertools.combinations``), written in ceil(log2 C(M, N)) bits, packed like the bitmask (code bits least
  significant first, groups in order). Groups run along the inputs of the mask seen as [outputs, inputs]: axis 1 is
  the row-major flattening ``reshape(shape[0], -1)`` (Linear, Conv), axis 0 the transpose of a 2-D mask (the
  ``Conv1D`` of GPT-2-style models, stored [in, out]); groups are numbered row by row of that view. At 2:4 a group
  of four takes 3 bits, so an fp16 weight costs 0.5 + 3/64 = 0.547 of its dense size.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

BITORDER = "little"
GAP_DTYPES: dict[str, np.dtype] = {"gaps8": np.dtype(np.uint8), "gaps16": np.dtype(np.uint16)}
INDEX_ENCODINGS = ("bitmask", *GAP_DTYPES)
NM_GROUP_SIZES = (2, 4, 8, 16)  # the M an N:M index may use (2:4 and 4:8 are the hardware ones)
NMLayout = tuple[int, int, int]  # (n, m, axis)


def _flat_bool(mask: Tensor) -> np.ndarray:
    return mask.detach().to("cpu", torch.bool).contiguous().numpy().ravel()


def pack_mask(mask: Tensor) -> Tensor:
    """Pack a bool mask into uint8 bytes, 8 elements per byte, little bit order."""
    return torch.from_numpy(np.packbits(_flat_bool(mask), bitorder=BITORDER))


def unpack_mask(packed: Tensor, shape: tuple[int, ...] | list[int]) -> Tensor:
    """Inverse of :func:`pack_mask`: a bool tensor of ``shape``. Raises ValueError on a wrong byte count."""
    numel = int(np.prod(shape, dtype=np.int64))
    data = packed.detach().cpu().numpy()
    if data.dtype != np.uint8 or data.ndim != 1 or data.size != (numel + 7) // 8:
        raise ValueError(f"bitmask has {data.size} bytes of {data.dtype}, expected {(numel + 7) // 8} uint8")
    bits = np.unpackbits(data, count=numel, bitorder=BITORDER).astype(bool)
    return torch.from_numpy(bits).reshape(tuple(shape))


def _split_gaps(mask: Tensor, largest: int) -> tuple[np.ndarray, np.ndarray]:
    positions = np.flatnonzero(_flat_bool(mask))
    gaps = np.diff(positions, prepend=-1)
    fillers = (gaps - 1) // largest
    return gaps - fillers * largest, fillers


def gap_entries(mask: Tensor, encoding: str) -> int:
    """How many entries ``encode_gaps(mask, encoding)`` writes (kept positions plus fillers)."""
    largest = int(np.iinfo(GAP_DTYPES[encoding]).max)
    remainders, fillers = _split_gaps(mask, largest)
    return int(remainders.size + fillers.sum())


def encode_gaps(mask: Tensor, encoding: str) -> Tensor:
    """Gap-encode the True positions of ``mask`` as uint8 (``gaps8``) or uint16 (``gaps16``) entries."""
    dtype = GAP_DTYPES[encoding]
    remainders, fillers = _split_gaps(mask, int(np.iinfo(dtype).max))
    out = np.zeros(int(remainders.size + fillers.sum()), dtype=dtype)
    out[np.cumsum(fillers + 1) - 1] = remainders
    return torch.from_numpy(out)


def decode_gaps(gaps: Tensor, shape: tuple[int, ...] | list[int], encoding: str) -> Tensor:
    """Inverse of :func:`encode_gaps`: a bool tensor of ``shape``. Raises ValueError on malformed gaps."""
    dtype = GAP_DTYPES[encoding]
    data = gaps.detach().cpu().numpy()
    if data.dtype != dtype or data.ndim != 1:
        raise ValueError(f"{encoding} index must be 1-D {dtype}, got {data.ndim}-D {data.dtype}")
    numel = int(np.prod(shape, dtype=np.int64))
    steps = np.where(data == 0, int(np.iinfo(dtype).max), data).astype(np.int64)
    positions = (np.cumsum(steps) - 1)[data != 0]
    if positions.size and positions[-1] >= numel:
        raise ValueError(f"{encoding} index points past the end of a tensor of {numel} elements")
    flat = np.zeros(numel, dtype=bool)
    flat[positions] = True
    return torch.from_numpy(flat).reshape(tuple(shape))


def _nm_view(flat: np.ndarray, shape: tuple[int, ...], m: int, axis: int) -> np.ndarray | None:
    """The mask as groups [count, m] along `axis` (see the module docstring), or None if the inputs do not split."""
    rows = int(shape[0]) if shape else 1
    view = flat.reshape(rows, -1)
    if axis == 0:
        view = view.T
    if view.shape[1] % m:
        return None
    return view.reshape(-1, m)


def code_bits(n: int, m: int) -> int:
    return max(1, math.ceil(math.log2(math.comb(m, n))))


@lru_cache(maxsize=64)
def _subsets(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(table [C(m, n), m] bool of each code's kept positions, lookup [2^m] int64 from a group's bits to its code)."""
    table = np.zeros((math.comb(m, n), m), dtype=bool)
    lookup = np.full(1 << m, -1, dtype=np.int64)
    for code, kept in enumerate(itertools.combinations(range(m), n)):
        table[code, list(kept)] = True
        lookup[sum(1 << k for k in kept)] = code
    return table, lookup


def nm_layout(mask: Tensor, axis: int = 1) -> NMLayout | None:
    """The N:M layout (n, m, axis) with the smallest index that ``mask`` follows exactly (every group keeps n) along
    the layer's inputs: ``axis`` 1, or 0 for a 2-D weight stored [in, out] (Hugging Face Conv1D)."""
    flat, shape = _flat_bool(mask), tuple(mask.shape)
    best: tuple[int, NMLayout] | None = None
    if axis == 0 and len(shape) != 2:
        return None
    for m in NM_GROUP_SIZES:
        groups = _nm_view(flat, shape, m, axis)
        if groups is None or not groups.size:
            continue
        kept = groups.sum(axis=1)
        n = int(kept[0])
        if 0 < n < m and bool((kept == n).all()):
            size = (groups.shape[0] * code_bits(n, m) + 7) // 8
            if best is None or size < best[0]:
                best = (size, (n, m, axis))
    return None if best is None else best[1]


def encode_nm(mask: Tensor, layout: NMLayout) -> Tensor:
    """Pack the N:M codes of ``mask`` (which must follow ``layout`` exactly) as uint8 bytes."""
    n, m, axis = layout
    groups = _nm_view(_flat_bool(mask), tuple(mask.shape), m, axis)
    codes = None if groups is None else _subsets(n, m)[1][(groups.astype(np.int64) << np.arange(m)).sum(axis=1)]
    if codes is None or (codes < 0).any():
        raise ValueError(f"mask does not follow the {n}:{m} pattern along axis {axis}")
    bits = ((codes[:, None] >> np.arange(code_bits(n, m))) & 1).astype(bool)
    return torch.from_numpy(np.packbits(bits.ravel(), bitorder=BITORDER))


def nm_nbytes(shape: tuple[int, ...] | list[int], layout: NMLayout) -> int:
    n, m, _ = layout
    numel = int(np.prod(shape, dtype=np.int64))
    return (numel // m * code_bits(n, m) + 7) // 8


def decode_nm(packed: Tensor, shape: tuple[int, ...] | list[int], layout: NMLayout) -> Tensor:
    """Inverse of :func:`encode_nm`. Raises ValueError on a bad layout, byte count or code, before allocating."""
    n, m, axis = (int(v) for v in layout)
    shape = tuple(int(d) for d in shape)
    if not (1 <= n < m and m in NM_GROUP_SIZES and axis in (0, 1)) or (axis == 0 and len(shape) != 2):
        raise ValueError(f"unsupported N:M layout {n}:{m} along axis {axis} for shape {list(shape)}")
    inputs = shape[0] if axis == 0 else int(np.prod(shape[1:], dtype=np.int64))
    data = packed.detach().cpu().numpy()
    if inputs % m or data.dtype != np.uint8 or data.ndim != 1 or data.size != nm_nbytes(shape, (n, m, axis)):
        raise ValueError(f"{n}:{m} index of {data.size} bytes does not fit a tensor of shape {list(shape)}")
    count, k = int(np.prod(shape, dtype=np.int64)) // m, code_bits(n, m)
    bits = np.unpackbits(data, count=count * k, bitorder=BITORDER).reshape(count, k).astype(np.int64)
    codes = (bits << np.arange(k)).sum(axis=1)
    table = _subsets(n, m)[0]
    if (codes >= len(table)).any():
        raise ValueError(f"{n}:{m} index holds a code past the {len(table)} subsets")
    rows = shape[1] if axis == 0 else shape[0]
    view = table[codes].reshape(rows, -1)
    return torch.from_numpy(np.ascontiguousarray(view.T if axis == 0 else view)).reshape(shape)


def index_nbytes(mask: Tensor, encoding: str, nm_axis: int = 1) -> int:
    """Bytes the index of ``mask`` takes in ``encoding`` ("dense" costs nothing but keeps every value)."""
    if encoding == "dense":
        return 0
    if encoding == "bitmask":
        return (mask.numel() + 7) // 8
    if encoding == "nm":
        layout = nm_layout(mask, nm_axis)
        return math.inf if layout is None else nm_nbytes(tuple(mask.shape), layout)
    return gap_entries(mask, encoding) * GAP_DTYPES[encoding].itemsize


def choose_encoding(mask: Tensor, nm_axis: int = 1) -> str:
    """The smallest index for ``mask``: a full mask stays dense, otherwise bitmask, gaps or, for a mask that follows
    an N:M pattern exactly along the inputs (``nm_axis``, see :func:`nm_layout`), nm (ties: bitmask, gaps, nm).

    Every encoding stores the same nnz values, so only the index size decides.
    """
    if bool(mask.all()):
        return "dense"
    candidates = (*INDEX_ENCODINGS, "nm")
    return min(candidates, key=lambda enc: (index_nbytes(mask, enc, nm_axis), candidates.index(enc)))
