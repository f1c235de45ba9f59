"""Compact encodings of a pruning mask: a packed bitmask or Deep-Compression-style index gaps.

Both encodings describe the True positions of a mask in row-major (C) order of the flattened tensor.

- ``bitmask``: ``np.packbits(mask.ravel(), bitorder="little")``; bit ``i`` (least significant first) of byte
  ``j`` is element ``8 * j + i``. The last byte is zero-padded. Size: ``ceil(numel / 8)`` bytes.
- ``gaps8`` / ``gaps16``: one unsigned entry (uint8 / uint16) per kept position holding the distance from the
  previous kept position (the first one counts from -1, so every real gap is >= 1). A gap larger than the
  largest entry ``M`` (255 / 65535) is written as filler entries of value 0, each meaning "advance by M, keep
  nothing", then the remainder. Fillers carry no value, so the values array always has exactly nnz entries.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

BITORDER = "little"
GAP_DTYPES: dict[str, np.dtype] = {"gaps8": np.dtype(np.uint8), "gaps16": np.dtype(np.uint16)}
INDEX_ENCODINGS = ("bitmask", *GAP_DTYPES)


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


def index_nbytes(mask: Tensor, encoding: str) -> int:
    """Bytes the index of ``mask`` takes in ``encoding`` ("dense" costs nothing but keeps every value)."""
    if encoding == "dense":
        return 0
    if encoding == "bitmask":
        return (mask.numel() + 7) // 8
    return gap_entries(mask, encoding) * GAP_DTYPES[encoding].itemsize


def choose_encoding(mask: Tensor) -> str:
    """The smallest index for ``mask``: a full mask stays dense, otherwise bitmask or gaps (ties: bitmask).

    Every encoding stores the same nnz values, so only the index size decides.
    """
    if bool(mask.all()):
        return "dense"
    return min(INDEX_ENCODINGS, key=lambda enc: (index_nbytes(mask, enc), INDEX_ENCODINGS.index(enc)))
