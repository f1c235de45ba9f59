"""Small model files that claim a large network (issue 27): each lies about its stored data in one way.

Every file is a LeNet-300-100 whose header claims 1x440x440 inputs, so that fc1.weight is [300, 193600]: 232 MiB of
float32. A 5 MB `extra` entry pads the file so that its size-based budget (prunekit.export.arch.budget) admits that
network: the lie must be caught by comparing the stored data with the header, not by the budget. The `zero` files tell
no lie (a sparse file whose fc1 is all pruned: its gaps index is legitimately empty) and are not padded: the first is
refused by the budget, the second (a smaller network) loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import prunekit
from tests.hostile.model_files import join, split

WIDE = [300, 440 * 440]
PAD = "x" * 5_000_000


def _lenet(root: Path, fmt: str, bits: bool = False) -> Path:
    torch.manual_seed(0)
    model = prunekit.create_model("lenet_300_100", 4, (1, 8, 8))
    masks = {n: p != 0 for n, p in model.named_parameters() if n.endswith("weight")}
    masks["fc1.weight"] = torch.zeros(300, 64, dtype=torch.bool)
    extra: dict[str, Any] = {}
    if bits:  # fc1 whole on a 2-bit grid, stored as codes
        with torch.no_grad():
            model.fc1.weight.copy_(torch.randint(-1, 2, (300, 64)).float() * 0.5)
        masks["fc1.weight"] = torch.ones(300, 64, dtype=torch.bool)
        extra = {"bits": {"fc1.weight": 2}}
    return prunekit.save(
        model, root / f"base_{fmt}{'_bits' if bits else ''}.safetensors", format=fmt, masks=masks, **extra
    )


def _rewrite(source: Path, target: Path, edit: Callable[[dict, dict], dict[str, bytes] | None], pad: bool) -> Path:
    """`edit(meta, header)` changes the prunekit metadata and the safetensors header; it may return new raw data for
    stored tensors (name -> bytes), which is laid out again."""
    header, body = split(source.read_bytes())
    meta = json.loads(header["__metadata__"]["prunekit"])
    meta["arch"]["input_shape"] = [1, 440, 440]
    meta["tensors"]["fc1.weight"]["shape"] = WIDE
    raw = {k: body[v["data_offsets"][0] : v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}
    raw |= edit(meta, header) or {}
    if pad:
        meta["extra"] = {"pad": PAD}
    header["__metadata__"]["prunekit"] = json.dumps(meta)
    out, offset = bytearray(), 0
    for key in [k for k in header if k != "__metadata__"]:
        header[key]["data_offsets"] = [offset, offset + len(raw[key])]
        out += raw[key]
        offset += len(raw[key])
    target.write_bytes(join(header, bytes(out)))
    return target


def _set_stored(header: dict, key: str, dtype: str, data: bytes, itemsize: int) -> dict[str, bytes]:
    header[key] = {"dtype": dtype, "shape": [len(data) // itemsize], "data_offsets": [0, 0]}
    return {key: data}


def _zero(meta: dict, header: dict) -> None:
    meta["tensors"]["fc1.weight"].update(encoding="gaps8", nnz=0)


def _zero_small(meta: dict, header: dict) -> None:
    """No lie, and within the budget: 300 x 10,000 all pruned (12 MB of float32) from a 125 kB file."""
    meta["arch"]["input_shape"] = [1, 100, 100]
    meta["tensors"]["fc1.weight"].update(shape=[300, 100 * 100], encoding="gaps8", nnz=0)


def _gaps_past_end(meta: dict, header: dict) -> dict[str, bytes]:
    meta["tensors"]["fc1.weight"].update(encoding="gaps8", nnz=1)
    values = _set_stored(header, "fc1.weight::values", "F32", np.ones(1, np.float32).tobytes(), 4)
    return values | _set_stored(header, "fc1.weight::gaps", "U8", bytes([0] * 227_764 + [255]), 1)


def _bitmask_short(meta: dict, header: dict) -> dict[str, bytes]:
    meta["tensors"]["fc1.weight"].update(encoding="bitmask", nnz=0)
    header.pop("fc1.weight::gaps", None)
    header.pop("fc1.weight::values", None)
    values = _set_stored(header, "fc1.weight::values", "F32", b"", 4)
    return values | _set_stored(header, "fc1.weight::mask", "U8", bytes(1000), 1)


def _bitmask_popcount(meta: dict, header: dict) -> dict[str, bytes]:
    meta["tensors"]["fc1.weight"].update(encoding="bitmask", nnz=0)
    header.pop("fc1.weight::gaps", None)
    values = _set_stored(header, "fc1.weight::values", "F32", b"", 4)
    index = bytearray(300 * 440 * 440 // 8)
    index[-1] = 1  # one kept position the header does not count; the file is 7 MB
    return values | _set_stored(header, "fc1.weight::mask", "U8", bytes(index), 1)


def _values_lie(meta: dict, header: dict) -> dict[str, bytes]:
    meta["tensors"]["fc1.weight"].update(encoding="gaps8", nnz=0)
    return _set_stored(header, "fc1.weight::values", "F32", np.ones(5, np.float32).tobytes(), 4)


def _alias_lie(meta: dict, header: dict) -> None:
    """fc1.weight: "another name of fc2.weight", which is [100, 300]."""
    meta["tensors"]["fc1.weight"] = {"shape": WIDE, "dtype": "float32", "encoding": "alias", "of": "fc2.weight"}
    header.pop("fc1.weight::gaps")
    header.pop("fc1.weight::values")


def _dense_lie(meta: dict, header: dict) -> None:
    """The table says [300, 193600]; the stored tensor is still [300, 64]."""


def _lowbit_short(meta: dict, header: dict) -> None:
    """Codes for 300 x 64 values, the table claiming 300 x 193600."""


CASES: dict[str, tuple[str, bool, Callable[[dict, dict], Any], str]] = {
    # name: (format of the base file, low-bit?, edit, fragment of the expected refusal; "" for a load)
    "zero": ("sparse", False, _zero, "MiB allowed"),
    "zero within the budget": ("sparse", False, _zero_small, ""),
    "gaps past the end": ("sparse", False, _gaps_past_end, "past the end"),
    "bitmask too short": ("sparse", False, _bitmask_short, "fc1.weight::mask"),
    "bitmask with an uncounted bit": ("sparse", False, _bitmask_popcount, "keeps 1 positions"),
    "values for pruned positions": ("sparse", False, _values_lie, "fc1.weight::values"),
    "alias of a smaller tensor": ("sparse", False, _alias_lie, "not a stored tensor of its shape"),
    "dense tensor smaller than its entry": ("dense", False, _dense_lie, "fc1.weight"),
    "compact tensor smaller than its entry": ("compact", False, _dense_lie, "fc1.weight"),
    "low-bit codes for fewer values": ("sparse", True, _lowbit_short, "low-bit codes must be"),
}


def make_crafted(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, fragment of its refusal) for every case of CASES."""
    root.mkdir(parents=True, exist_ok=True)
    bases: dict[tuple[str, bool], Path] = {}
    files = {}
    for i, (name, (fmt, bits, edit, fragment)) in enumerate(CASES.items()):
        base = bases.get((fmt, bits)) or bases.setdefault((fmt, bits), _lenet(root, fmt, bits))
        path = _rewrite(base, root / f"crafted_{i}.safetensors", edit, pad=not name.startswith("zero"))
        files[name] = (path, fragment)
    return files


def make_floor(root: Path) -> Path:
    """A sparse file (125 kB) whose all-pruned fc1, [300, 258 x 258], decodes to just under the 96 MiB floor of the
    budget: the largest network a small file may make prunekit load without raising the limit."""

    def edit(meta: dict, header: dict) -> None:
        meta["arch"]["input_shape"] = [1, 258, 258]
        meta["tensors"]["fc1.weight"].update(shape=[300, 258 * 258], encoding="gaps8", nnz=0)

    root.mkdir(parents=True, exist_ok=True)
    return _rewrite(_lenet(root, "sparse"), root / "floor.safetensors", edit, pad=False)
