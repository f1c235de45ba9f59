"""Dense and sparse model files: safetensors tensors plus one JSON header entry, "prunekit", that rebuilds the model.

A dense file stores every state-dict tensor under its own name, so any safetensors reader can use it. A sparse
file stores each masked tensor as its surviving values (1-D, row-major order of the kept positions) under
``NAME::values`` plus an index, ``NAME::mask`` (bitmask) or ``NAME::gaps`` (gaps8/gaps16), whichever is smaller
(see :mod:`prunekit.export.bitpack`); a masked tensor with nothing pruned stays dense. Floating tensors are
stored in ``dtype`` and restored to their original dtype on load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from prunekit.errors import UserError
from prunekit.export.bitpack import BITORDER, choose_encoding, decode_gaps, encode_gaps, pack_mask, unpack_mask
from prunekit.export.safety import atomic_write_bytes, one_line, require_safetensors

FORMATS = ("dense", "sparse", "compact")  # compact: see prunekit.export.compact
VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
_INDEX_SUFFIX = {"bitmask": "::mask", "gaps8": "::gaps", "gaps16": "::gaps"}
_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
PathLike = str | os.PathLike[str]


def save(
    model: nn.Module,
    path: PathLike,
    *,
    format: str = "dense",
    masks: dict[str, Tensor] | None = None,
    dtype: str = "float32",
    metadata: dict | None = None,
) -> Path:
    """Write ``model`` atomically as a dense or sparse safetensors file; masked-out weights are stored as zeros.

    ``masks`` (bool, keyed by state-dict name) default to the nonzeros of every Conv/Linear weight.
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}: known: {', '.join(FORMATS)}")
    refuse_inference_only(model)
    if format == "compact":  # every tensor dense, at its (possibly narrowed) shape; masks are not needed
        from prunekit.export.compact import save_compact

        return save_compact(model, path, dtype=dtype, metadata=metadata)
    dtype = _DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise UserError(f"unknown export dtype {dtype!r}: known: {', '.join(DTYPES)}")
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    masks = _checked_masks(state, zero_masks(model) if masks is None else masks)
    tensors: dict[str, Tensor] = {}
    entries: dict[str, dict[str, Any]] = {}
    for name, tensor in state.items():
        mask = masks.get(name)
        stored = tensor.to(DTYPES[dtype]) if tensor.is_floating_point() else tensor
        if mask is not None:
            stored = stored.masked_fill(~mask, 0)
        encoding = choose_encoding(mask) if format == "sparse" and mask is not None else "dense"
        if encoding == "dense":
            tensors[name] = stored.contiguous().clone()
        else:
            tensors[name + "::values"] = stored.reshape(-1)[mask.reshape(-1)].contiguous()
            index = pack_mask(mask) if encoding == "bitmask" else encode_gaps(mask, encoding)
            tensors[name + _INDEX_SUFFIX[encoding]] = index
        entries[name] = {
            "shape": list(tensor.shape),
            "dtype": _dtype_name(tensor.dtype),
            "stored_dtype": _dtype_name(stored.dtype),
            "encoding": encoding,
            "nnz": int(mask.sum()) if mask is not None else int(torch.count_nonzero(tensor)),
            "masked": mask is not None and format == "sparse",
        }
    numel = sum(m.numel() for m in masks.values())
    meta = {
        "format": format,
        "version": VERSION,
        "arch": getattr(model, "arch", None),
        "dtype": dtype,
        "bitorder": BITORDER,
        "sparsity": 1.0 - sum(int(m.sum()) for m in masks.values()) / numel if numel else 0.0,
        "tensors": entries,
        "extra": metadata or {},
    }
    header = {"prunekit": json.dumps(meta, default=str, separators=(",", ":"))}
    return atomic_write_bytes(path, safetensors.torch.save(tensors, metadata=header))


def refuse_inference_only(model: nn.Module) -> None:
    """Sparse-inference layers keep their weights as buffers outside the state dict: such a model cannot be saved."""
    for name, module in model.named_modules():
        if getattr(module, "inference_only", False):
            raise UserError(
                f"layer {name or type(model).__name__!r} is a sparse-inference layer: save the model before "
                "prunekit.sparse_inference.accelerate, or turn it back with prunekit.sparse_inference.restore(model)"
            )


def zero_masks(model: nn.Module) -> dict[str, Tensor]:
    """The nonzero pattern of every Conv/Linear weight, keyed by state-dict name."""
    return {
        f"{name}.weight" if name else "weight": module.weight.detach().cpu() != 0
        for name, module in model.named_modules()
        if isinstance(module, _PRUNABLE)
    }


def read_metadata(path: PathLike) -> dict:
    """The file's "prunekit" header, without reading any tensor."""
    path = require_safetensors(path)
    with _opened(path) as f:
        return _parse_meta(path, f.metadata())


def load_state_dict(path: PathLike) -> tuple[dict[str, Tensor], dict]:
    """The dense state dict (sparse tensors filled with zeros, original dtypes) and the metadata."""
    state, _, meta = _read(path)
    return state, meta


def load(path: PathLike, *, builder: Callable[[Any], nn.Module] | None = None, map_location: Any = "cpu") -> nn.Module:
    """Rebuild the model recorded in the file (or ``builder(arch)``), load its weights, return it in eval mode.

    Sparse files also give the model a ``masks`` attribute: name -> bool tensor, the saved pruning pattern.
    """
    meta = read_metadata(path)
    if meta["format"] == "compact":
        from prunekit.export.compact import load_compact

        return load_compact(path, builder=builder, map_location=map_location)
    model = _build(path, meta.get("arch")) if builder is None else builder(meta.get("arch"))
    _check_fits(path, model, meta["tensors"])  # before decoding, so a hostile header cannot claim huge tensors
    state, masks, meta = _read(path)
    model.load_state_dict(state)
    model.to(map_location).eval()
    if meta["format"] == "sparse":
        model.masks = {name: mask.to(map_location) for name, mask in masks.items()}
    return model


def _read(path: PathLike) -> tuple[dict[str, Tensor], dict[str, Tensor], dict]:
    path = require_safetensors(path)
    with _opened(path) as f:
        meta = _parse_meta(path, f.metadata())
        try:
            stored = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise UserError(f"{path} is a corrupted safetensors file ({one_line(exc)}); export it again") from exc
    state: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    name = "?"
    try:
        for name, entry in meta["tensors"].items():
            state[name], mask = _decode(name, entry, stored)
            if mask is not None:
                masks[name] = mask
        name = "?"
        if stored:
            raise ValueError(f"tensors not described by the header: {', '.join(sorted(stored)[:3])}")
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, MemoryError) as exc:
        raise UserError(f"{path} is corrupted: tensor {name!r}: {one_line(exc)}") from exc
    return state, masks, meta


def _decode(name: str, entry: dict, stored: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """One dense tensor and its mask (None when the tensor was not masked) from the stored pieces."""
    shape = tuple(int(n) for n in entry["shape"])
    dtype = getattr(torch, str(entry["dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {entry['dtype']!r}")
    encoding = entry["encoding"]
    if encoding == "dense":
        tensor = _take(stored, name)
        if tuple(tensor.shape) != shape:
            raise ValueError(f"stored shape {list(tensor.shape)} differs from header shape {list(shape)}")
        return tensor.to(dtype), torch.ones(shape, dtype=torch.bool) if entry.get("masked") else None
    if encoding not in _INDEX_SUFFIX:
        raise ValueError(f"unknown encoding {encoding!r}")
    index = _take(stored, name + _INDEX_SUFFIX[encoding])
    mask = unpack_mask(index, shape) if encoding == "bitmask" else decode_gaps(index, shape, encoding)
    values = _take(stored, name + "::values")
    nnz = int(mask.sum())
    if values.ndim != 1 or values.numel() != nnz or nnz != int(entry["nnz"]):
        raise ValueError(f"{values.numel()} values for {nnz} kept positions (header says {entry['nnz']})")
    flat = torch.zeros(mask.numel(), dtype=dtype)
    flat[mask.reshape(-1)] = values.to(dtype)
    return flat.reshape(shape), mask


def _take(stored: dict[str, Tensor], key: str) -> Tensor:
    if key not in stored:
        raise ValueError(f"stored tensor {key!r} is missing")
    return stored.pop(key)


def _opened(path: Path) -> Any:
    try:
        return safe_open(path, framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(
            f"{path} is a corrupted or truncated safetensors file ({one_line(exc)}); export it again"
        ) from exc


def _parse_meta(path: Path, header: dict[str, str] | None) -> dict:
    if not header or "prunekit" not in header:
        raise UserError(f"{path} has no prunekit metadata: it was not written by prunekit.export.save")
    try:
        meta = json.loads(header["prunekit"])
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} has unreadable prunekit metadata ({one_line(exc)}); export it again") from exc
    if not isinstance(meta, dict):
        raise UserError(f"{path} has prunekit metadata that is not a JSON object; export it again")
    if meta.get("version") != VERSION:
        raise UserError(
            f"{path} is prunekit file version {meta.get('version')!r}; this prunekit reads version {VERSION}"
        )
    if meta.get("format") not in FORMATS:
        raise UserError(f"{path} has format {meta.get('format')!r}; this loader reads {', '.join(FORMATS)}")
    if not isinstance(meta.get("tensors"), dict):
        raise UserError(f"{path} has no tensor table in its prunekit metadata; export it again")
    return meta


def _build(path: Path, arch: Any) -> nn.Module:
    """The architecture named in the file, via the model registry (imported late: models are heavy)."""
    from prunekit.models import create_model

    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise UserError(f"{path} does not record its architecture; pass builder= to rebuild the model")
    kwargs = {key: value for key, value in arch.items() if key != "name"}
    if isinstance(kwargs.get("input_shape"), list):
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    try:
        return create_model(arch["name"], **kwargs)
    except (UserError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: cannot rebuild its architecture: {one_line(exc)}") from exc


def _check_fits(path: PathLike, model: nn.Module, entries: dict[str, Any]) -> None:
    """Compare the header's tensor table with the model's state dict; one line listing the first problems."""
    expected = {name: list(t.shape) for name, t in model.state_dict().items()}
    found = {name: entry.get("shape") if isinstance(entry, dict) else None for name, entry in entries.items()}
    problems = [f"missing {n}" for n in expected if n not in found]
    problems += [f"unexpected {n}" for n in found if n not in expected]
    problems += [
        f"{n} is {found[n]} in the file but {shape} in the model"
        for n, shape in expected.items()
        if n in found and found[n] != shape
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        arch = getattr(model, "arch", {}) or {}
        raise UserError(
            f"{path} does not fit the architecture {arch.get('name', type(model).__name__)}: "
            f"{'; '.join(problems[:3])}{more}"
        )


def _checked_masks(state: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, Tensor]:
    checked = {}
    for name, mask in masks.items():
        if name not in state:
            raise UserError(f"mask for {name!r}, which is not in the model's state dict")
        if tuple(mask.shape) != tuple(state[name].shape):
            raise UserError(f"mask for {name!r} is {list(mask.shape)}, the tensor is {list(state[name].shape)}")
        checked[name] = mask.detach().to("cpu", torch.bool)
    return checked


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
