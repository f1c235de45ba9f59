"""Low-bit values in model files: weights quantised to b bits (BitPruning) stored as b-bit codes, not float32.

A tensor (or a sparse tensor's kept values) whose values all lie on the symmetric b-bit grid k * scale,
k in [-L, L] with L = 2^(b-1) - 1 (what `prunekit.pruning.methods.bitprune.quantize` produces), is stored as
``NAME::codes``: the codes k + L, b bits each, packed little-endian into uint8 (ceil(N * b / 8) bytes), and
``NAME::scale``: one float32. Decoding computes k * scale in float32, which gives back the saved values bit for
bit: the encoder searches the scale among a few float32 neighbours of max|v| / L and packs only if the round trip is
exact (else the tensor is stored as floats, unchanged). A file is checked on load: bits in [2, 16], the code
stream's length, codes within [0, 2L], a finite positive scale. A file holding codes is file version 2, so that a
prunekit that cannot read them says so in one line; files without codes stay version 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

MIN_BITS, MAX_BITS = 2, 16
_NEIGHBOURS = 4  # float32 steps searched on each side of max|v| / L
CHUNK = 1 << 20  # codes packed or unpacked at a time (a multiple of 8)


def levels(bits: int) -> int:
    """Grid points on each side of 0 at `bits` bits (symmetric: one code of 2^bits is unused)."""
    return 2 ** (bits - 1) - 1


def encode(values: Tensor, bits: int) -> tuple[Tensor, Tensor] | None:
    """(codes, scale) that decode to exactly `values` (float32), or None if they are not on a `bits`-bit grid."""
    if not (isinstance(bits, int) and MIN_BITS <= bits <= MAX_BITS) or values.dtype != torch.float32:
        return None
    flat = values.detach().cpu().reshape(-1)
    top = float(flat.abs().max()) if flat.numel() else 0.0
    if top == 0.0 or not math.isfinite(top):
        return None
    high = levels(bits)
    scale = np.float32(np.float32(top) / np.float32(high))
    candidates = [scale]
    up = down = scale
    for _ in range(_NEIGHBOURS):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
        candidates += [up, down]
    for s in candidates:
        step = torch.tensor(float(s), dtype=torch.float32)
        k = torch.round(flat / step)
        if k.abs().max() <= high and torch.equal(k * step, flat):
            return pack((k.to(torch.int64) + high), bits), step.reshape(1)
    return None


def decode(codes: Tensor, scale: Tensor, bits: int, count: int) -> Tensor:
    """The `count` float32 values stored as `codes` and `scale`; ValueError if the pieces do not fit together."""
    if not (isinstance(bits, int) and not isinstance(bits, bool) and MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    if scale.dtype != torch.float32 or scale.numel() != 1 or not (math.isfinite(float(scale)) and float(scale) > 0):
        raise ValueError("the scale of low-bit codes must be one finite positive float32")
    k = unpack(codes, bits, count)
    high = levels(bits)
    if count and int(k.max()) > 2 * high:
        raise ValueError(f"a {bits}-bit code is above {2 * high}")
    return (k - high).to(torch.float32) * scale.reshape(()).to(torch.float32)


def pack(codes: Tensor, bits: int) -> Tensor:
    """Non-negative integer codes < 2^bits, `bits` bits each, little-endian, into a 1-D uint8 tensor (in chunks of
    CHUNK codes, a multiple of 8 so that every chunk ends on a byte: memory stays bounded for any tensor size)."""
    c = codes.reshape(-1).numpy().astype(np.int64)
    shifts = np.arange(bits)
    pieces = [
        np.packbits(((c[i : i + CHUNK, None] >> shifts) & 1).astype(np.uint8).reshape(-1), bitorder="little")
        for i in range(0, len(c), CHUNK)
    ]
    return torch.from_numpy(np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8))


def unpack(data: Tensor, bits: int, count: int) -> Tensor:
    """`count` codes of `bits` bits from `pack`'s output; ValueError on a stream of the wrong type or length."""
    expected = math.ceil(count * bits / 8)
    if data.dtype != torch.uint8 or data.ndim != 1 or data.numel() != expected:
        raise ValueError(f"low-bit codes must be {expected} uint8 bytes for {count} {bits}-bit values")
    raw, weights = data.numpy(), np.int64(1) << np.arange(bits)
    out = np.empty(count, dtype=np.int64)
    for i in range(0, count, CHUNK):  # CHUNK codes take CHUNK * bits / 8 whole bytes
        n = min(CHUNK, count - i)
        start = i * bits // 8
        flat = np.unpackbits(raw[start : start + math.ceil(n * bits / 8)], count=n * bits, bitorder="little")
        out[i : i + n] = flat.reshape(n, bits).astype(np.int64) @ weights
    return torch.from_numpy(out)


def pack_tensor(name: str, tensor: Tensor, mask: Tensor | None, whole: bool, bits: int | None) -> dict[str, Tensor]:
    """The stored pieces of a float32 tensor at `bits` bits: NAME::codes and NAME::scale for the whole tensor
    (`whole`) or for its kept values under `mask`; {} when it is not on a `bits`-bit grid (then floats are stored)."""
    if bits is None or tensor.dtype != torch.float32:
        return {}
    if whole:
        values = (tensor if mask is None else tensor.masked_fill(~mask, 0)).reshape(-1)
    else:
        values = tensor.reshape(-1)[mask.reshape(-1)]
    packed = encode(values, bits)
    return {} if packed is None else {name + "::codes": packed[0], name + "::scale": packed[1]}


def unpack_tensor(name: str, entry: dict, stored: dict[str, Tensor], count: int) -> Tensor:
    """The `count` float32 values `pack_tensor` stored for `name` (ValueError if its pieces are missing or damaged)."""
    for key in (name + "::codes", name + "::scale"):
        if key not in stored:
            raise ValueError(f"stored tensor {key!r} is missing")
    return decode(stored.pop(name + "::codes"), stored.pop(name + "::scale"), entry["bits"], count)
