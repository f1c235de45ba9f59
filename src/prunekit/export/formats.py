"""Dense and sparse model files: safetensors tensors plus one JSON header entry, "prunekit", that rebuilds the model.

A dense file stores every state-dict tensor under its own name, so any safetensors reader can use it. A sparse
file stores each masked tensor as its surviving values (1-D, row-major order of the kept positions) under
``NAME::values`` plus an index, ``NAME::mask`` (bitmask), ``NAME::gaps`` (gaps8/gaps16) or, for a mask that follows
an N:M pattern exactly, ``NAME::nm`` (one code per group; the header entry's ``nm`` holds [n, m, axis]), whichever
is smaller (see :mod:`prunekit.export.bitpack`); a masked tensor with nothing pruned stays dense. Floating tensors are
stored in ``dtype`` and restored to their original dtype on load.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.common.example_spec import DTYPES as REAL_DTYPES
from prunekit.common.safety import atomic_write_bytes, one_line, require_safetensors
from prunekit.export import arch
from prunekit.export.bitpack import (
    BITORDER,
    choose_encoding,
    decode_gaps,
    decode_nm,
    encode_gaps,
    encode_nm,
    nm_layout,
    pack_mask,
    unpack_mask,
)
from prunekit.export.meta_checks import parse_meta_text
from prunekit.export.stored_checks import check_stored
from prunekit.pruning import lowbit

FORMATS = ("dense", "sparse", "compact")  # compact: see prunekit.export.compact
VERSION = 1  # files without low-bit codes; a file with them is LOWBIT_VERSION, so that older readers refuse it clearly
LOWBIT_VERSION = 2
READS = (VERSION, LOWBIT_VERSION)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
_INDEX_SUFFIX = {"bitmask": "::mask", "gaps8": "::gaps", "gaps16": "::gaps", "nm": "::nm"}
PathLike = str | os.PathLike[str]


def save(
    model: nn.Module,
    path: PathLike,
    *,
    format: str = "dense",
    masks: dict[str, Tensor] | None = None,
    dtype: str = "float32",
    metadata: dict | None = None,
    bits: dict[str, int] | None = None,
) -> Path:
    """Write ``model`` atomically as a dense or sparse safetensors file; masked-out weights are stored as zeros.

    ``masks`` (bool, keyed by state-dict name) default to the nonzeros of every Conv/Linear weight. ``bits`` (name ->
    bits, e.g. BitPruning's) makes a sparse file store those float32 tensors as b-bit codes when their values lie on a
    b-bit grid, exactly (:mod:`prunekit.pruning.lowbit`); ``dtype`` then does not apply to them.
    """
    if format not in FORMATS:
        raise UserError(f"unknown export format {format!r}: known: {', '.join(FORMATS)}")
    refuse_inference_only(model)
    if format == "compact":  # written by prunekit.export.compact, through prunekit.export.save
        raise ValueError("compact files are written by prunekit.export.save (prunekit.export.files)")
    dtype = _DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise UserError(f"unknown export dtype {dtype!r}: known: {', '.join(DTYPES)}")
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    aliases = alias_names(model)
    masks = _checked_masks(state, zero_masks(model) if masks is None else masks, aliases)
    transposed = _transposed(model)
    tensors: dict[str, Tensor] = {}
    entries: dict[str, dict[str, Any]] = {}
    for name, tensor in state.items():
        if format == "sparse" and aliases.get(name) in state:  # a tied tensor is stored once, under its first name
            entries[name] = {"shape": list(tensor.shape), "dtype": _dtype_name(tensor.dtype), "encoding": "alias"}
            entries[name]["of"] = aliases[name]
            continue
        mask = masks.get(name)
        stored = tensor.to(DTYPES[dtype]) if tensor.is_floating_point() else tensor
        if mask is not None:
            stored = stored.masked_fill(~mask, 0)
        axis = 0 if name in transposed else 1  # N:M groups run along the layer's inputs
        encoding = choose_encoding(mask, axis) if format == "sparse" and mask is not None else "dense"
        layout = nm_layout(mask, axis) if encoding == "nm" else None
        wanted = (bits or {}).get(name) if format == "sparse" else None  # a dense file stays readable by any reader
        packed = lowbit.pack_tensor(name, tensor, mask, encoding == "dense", wanted)
        tensors.update(packed)
        if encoding == "dense" and not packed:
            tensors[name] = stored.contiguous().clone()
        elif encoding != "dense":
            if not packed:
                tensors[name + "::values"] = stored.reshape(-1)[mask.reshape(-1)].contiguous()
            tensors[name + _INDEX_SUFFIX[encoding]] = _encode_index(mask, encoding, layout)
        entries[name] = {
            "shape": list(tensor.shape),
            "dtype": _dtype_name(tensor.dtype),
            "stored_dtype": _dtype_name(stored.dtype),
            "encoding": encoding,
            "nnz": int(mask.sum()) if mask is not None else int(torch.count_nonzero(tensor)),
            "masked": mask is not None and format == "sparse",
            **({"nm": list(layout)} if layout is not None else {}),
            **({"bits": (bits or {})[name]} if packed else {}),
        }
    numel = sum(m.numel() for m in masks.values())
    meta = {
        "format": format,
        "version": LOWBIT_VERSION if any(e.get("bits") for e in entries.values()) else VERSION,
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


def _transposed(model: nn.Module) -> frozenset[str]:
    from prunekit.pruning.masks import transposed_names

    return transposed_names(model)


def zero_masks(model: nn.Module, include_embeddings: bool = False) -> dict[str, Tensor]:
    """The nonzero pattern of every tensor a prune covers by default, output layer included (see
    prunekit.pruning.coverage), keyed by its first state-dict name (a shared tensor once)."""
    from prunekit.pruning.coverage import candidates

    return {
        c.name: c.param.detach().cpu() != 0
        for c in candidates(model)
        if include_embeddings or all(u.rule != "embedding" for u in c.uses)
    }


def alias_names(model: nn.Module) -> dict[str, str]:
    """Other state-dict names of shared parameters -> their first name in named_parameters() order."""
    first = {id(p): n for n, p in model.named_parameters()}
    return {n: first[id(p)] for n, p in model.named_parameters(remove_duplicate=False) if n != first[id(p)]}


def read_metadata(path: PathLike) -> dict:
    """The file's "prunekit" header, without reading any tensor."""
    path = require_safetensors(path)
    with _opened(path) as f:
        return _parse_meta(path, f.metadata())


def load_state_dict(path: PathLike) -> tuple[dict[str, Tensor], dict]:
    """The dense state dict (sparse tensors filled with zeros, original dtypes) and the metadata; a file decoding
    to more than the budget of its size (prunekit.export.arch.budget) is refused."""
    check_data(path, read_metadata(path), arch.limit(path, None))
    state, _, meta = _read(path)
    return state, meta


def load(
    path: PathLike,
    *,
    builder: Callable[[Any], nn.Module] | None = None,
    map_location: Any = "cpu",
    semi_structured: bool = False,
    max_bytes: int | None = None,
    imports: Iterable[str] | None = None,
) -> nn.Module:
    """Rebuild the model recorded in the file (or ``builder(arch)``; ``builder()`` for a builder that takes no
    required argument, such as a user's model factory), load its weights, return it in eval mode.

    A file of a user's model records its factory (`package.module:factory` and its arguments); it is rebuilt only
    if the user names the module to import (``imports``), never because the file names it.
    Sparse files also give the model a ``masks`` attribute: name -> bool tensor, the saved pruning pattern.
    ``max_bytes`` raises the limit on the dense size of the rebuilt network (default: prunekit.export.arch.budget).
    semi_structured: on CUDA (``map_location``, default "cuda" then), cast the model to the file's half dtype
    (bfloat16 if it was saved so, else float16) and back every 2:4 Linear layer by a semi-structured sparse tensor
    (see :mod:`prunekit.sparse_inference.semi_structured`); the converted layers' names are in
    ``model.semi_structured``.
    """
    from prunekit.common import user_code

    user_code.allow(imports)
    meta = read_metadata(path)
    if semi_structured and not torch.cuda.is_available():
        raise UserError("semi_structured=True needs a CUDA device (2:4 sparse tensor cores); none is available")
    if meta["format"] == "compact":  # read by prunekit.export.compact, through prunekit.export.load
        raise ValueError("compact files are read by prunekit.export.load (prunekit.export.files)")
    check_data(path, meta, arch.limit(path, max_bytes) if builder is None else None)
    if builder is None:  # shapes first, on the meta device: a hostile header cannot make us allocate
        probe = arch.meta_model(meta.get("arch"), path)
        _check_fits(path, probe, meta["tensors"])
        arch.check_budget(probe, path, max_bytes)
        if probe.arch.get("input_shape"):  # a user's model (package.module:factory) records no input shape
            arch.check_forward(probe, probe.arch["input_shape"], path)
        model = arch.build(meta.get("arch"), path, max_bytes)
    else:
        model = arch.build_with(builder, meta.get("arch"))
    _check_fits(path, model, meta["tensors"])
    state, masks, meta = _read(path)
    model.load_state_dict(state)
    if semi_structured and str(map_location) == "cpu":
        map_location = "cuda"
    model.to(map_location).eval()
    if meta["format"] == "sparse":
        model.masks = {name: mask.to(map_location) for name, mask in masks.items()}
    model.bits = {n: e["bits"] for n, e in meta["tensors"].items() if isinstance(e, dict) and "bits" in e}
    if semi_structured:
        from prunekit.sparse_inference.semi_structured import to_semi_structured

        model.to(torch.bfloat16 if meta.get("dtype") == "bfloat16" else torch.float16)
        model.semi_structured = to_semi_structured(model)
    return model


def check_data(path: PathLike, meta: dict, limit: int | None) -> None:
    """The stored data against the tensor table, and its decoded size against `limit`, before anything is built
    (:mod:`prunekit.export.stored_checks`)."""
    with _opened(Path(path)) as f:
        check_stored(f, meta, path, limit)


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
        entries = meta["tensors"].items()
        for name, entry in entries:
            if entry.get("encoding") != "alias":
                state[name], mask = _decode(name, entry, stored)
                if mask is not None:
                    masks[name] = mask
        for name, entry in entries:
            if entry.get("encoding") == "alias":
                state[name] = _alias(name, entry, state)
        name = "?"
        if stored:
            raise ValueError(f"tensors not described by the header: {', '.join(sorted(stored)[:3])}")
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, MemoryError) as exc:
        raise UserError(f"{path} is corrupted: tensor {name!r}: {one_line(exc)}") from exc
    return state, masks, meta


def _decode(name: str, entry: dict, stored: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """One dense tensor and its mask (None when the tensor was not masked) from the stored pieces."""
    shape = tuple(int(n) for n in entry["shape"])
    dtype = getattr(torch, str(entry["dtype"]), None) if entry["dtype"] in REAL_DTYPES else None
    if not isinstance(dtype, torch.dtype):  # complex dtypes would double the decoded size and never come from prunekit
        raise ValueError(f"unknown dtype {str(entry['dtype'])[:20]!r}")
    encoding = entry["encoding"]
    if encoding == "dense" and "bits" in entry:
        tensor = lowbit.unpack_tensor(name, entry, stored, math.prod(shape)).reshape(shape).to(dtype)
        return tensor, torch.ones(shape, dtype=torch.bool) if entry.get("masked") else None
    if encoding == "dense":
        tensor = _take(stored, name)
        if tuple(tensor.shape) != shape:
            raise ValueError(f"stored shape {list(tensor.shape)} differs from header shape {list(shape)}")
        return tensor.to(dtype), torch.ones(shape, dtype=torch.bool) if entry.get("masked") else None
    if encoding not in _INDEX_SUFFIX:
        raise ValueError(f"unknown encoding {encoding!r}")
    index = _take(stored, name + _INDEX_SUFFIX[encoding])
    if encoding == "bitmask":
        mask = unpack_mask(index, shape)
    elif encoding == "nm":
        layout = entry.get("nm")
        if not (isinstance(layout, list) and len(layout) == 3 and all(isinstance(v, int) for v in layout)):
            raise ValueError(f"nm encoding needs [n, m, axis] integers, got {layout!r}")
        mask = decode_nm(index, shape, tuple(layout))
    else:
        mask = decode_gaps(index, shape, encoding)
    nnz = int(mask.sum())
    values = lowbit.unpack_tensor(name, entry, stored, nnz) if "bits" in entry else _take(stored, name + "::values")
    if values.ndim != 1 or values.numel() != nnz or nnz != int(entry["nnz"]):
        raise ValueError(f"{values.numel()} values for {nnz} kept positions (header says {entry['nnz']})")
    flat = torch.zeros(mask.numel(), dtype=dtype)
    flat[mask.reshape(-1)] = values.to(dtype)
    return flat.reshape(shape), mask


def _encode_index(mask: Tensor, encoding: str, layout: tuple[int, int, int] | None) -> Tensor:
    if encoding == "bitmask":
        return pack_mask(mask)
    if encoding == "nm":
        return encode_nm(mask, layout)
    return encode_gaps(mask, encoding)


def _alias(name: str, entry: dict, state: dict[str, Tensor]) -> Tensor:
    """A tied tensor stored once: the tensor of the name it is another name of."""
    target = state.get(str(entry.get("of")))
    if target is None or list(target.shape) != [int(n) for n in entry["shape"]]:
        raise ValueError(f"alias of {entry.get('of')!r}, which is not a stored tensor of the same shape")
    return target


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
    meta = parse_meta_text(str(header["prunekit"]), path)  # bounded, numbers checked (export.meta_checks)
    if not isinstance(meta, dict):
        raise UserError(f"{path} has prunekit metadata that is not a JSON object; export it again")
    if meta.get("version") not in READS:
        raise UserError(
            f"{path} is prunekit file version {meta.get('version')!r}; this prunekit reads versions "
            f"{', '.join(map(str, READS))}"
        )
    if meta.get("format") not in FORMATS:
        raise UserError(f"{path} has format {meta.get('format')!r}; this loader reads {', '.join(FORMATS)}")
    if not isinstance(meta.get("tensors"), dict):
        raise UserError(f"{path} has no tensor table in its prunekit metadata; export it again")
    return meta


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


def _checked_masks(
    state: dict[str, Tensor], masks: dict[str, Tensor], aliases: dict[str, str] | None = None
) -> dict[str, Tensor]:
    checked = {}
    for name, mask in masks.items():
        name = (aliases or {}).get(name, name)  # a mask under another name of a tied tensor: its first name
        if name not in state:
            raise UserError(f"mask for {name!r}, which is not in the model's state dict")
        if tuple(mask.shape) != tuple(state[name].shape):
            raise UserError(f"mask for {name!r} is {list(mask.shape)}, the tensor is {list(state[name].shape)}")
        checked[name] = mask.detach().to("cpu", torch.bool)
    return checked


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
