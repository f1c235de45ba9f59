"""Compact model files: a physically thinner network as plain safetensors, rebuilt without pickling.

The file is a dense file (every state-dict tensor under its own name, see :mod:`prunekit.export.formats`) whose
"prunekit" metadata has ``"format": "compact"`` and a ``"modules"`` table: for each module narrower than in the
base architecture (``arch``, rebuilt with ``prunekit.models.create_model``), its type and new sizes, e.g.
``{"layer1.0.conv1": {"type": "Conv2d", "attrs": {"in_channels": 32, "out_channels": 32, "groups": 1}}}``.
Loading rebuilds the base model, narrows those modules (attributes set, parameters and buffers replaced by empty
tensors of the shapes in the tensor table), then loads the weights. A file may only narrow a module, never widen
it, so a hostile header cannot make the loader allocate more than the base model.

A user's model has no zoo `arch`: its file records every module of a narrowable type with its sizes, and
`load(path, builder=factory)` narrows what the factory builds (the unpruned model) to them. An attention that
lost heads is recorded as a MultiheadAttention with fewer `num_heads` and gets its pruned class back on load.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.common.safety import atomic_write_bytes
from prunekit.export import arch
from prunekit.export.formats import (
    _DTYPE_ALIASES,
    DTYPES,
    VERSION,
    PathLike,
    _check_fits,
    _dtype_name,
    _read,
    alias_names,
    check_data,
    read_metadata,
    refuse_inference_only,
)

# the attributes that describe a module's width, per layer type Torch-Pruning can narrow
WIDTH_ATTRS: dict[type[nn.Module], tuple[str, ...]] = {
    nn.MultiheadAttention: ("num_heads",),
    nn.modules.conv._ConvNd: ("in_channels", "out_channels", "groups"),
    nn.Linear: ("in_features", "out_features"),
    nn.modules.batchnorm._NormBase: ("num_features",),
    nn.GroupNorm: ("num_groups", "num_channels"),
    nn.LayerNorm: ("normalized_shape",),
    nn.PReLU: ("num_parameters",),
    nn.Embedding: ("num_embeddings", "embedding_dim"),
}


def save_compact(model: nn.Module, path: PathLike, *, dtype: str = "float32", metadata: dict | None = None) -> Path:
    """Write `model` (possibly thinner than `model.arch`, or than what a user's factory builds) atomically as a
    compact safetensors file."""
    refuse_inference_only(model)
    dtype = _DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise UserError(f"unknown export dtype {dtype!r}: known: {', '.join(DTYPES)}")
    arch = getattr(model, "arch", None)
    arch = arch if isinstance(arch, dict) else None
    modules = narrowed_modules(model)
    tensors: dict[str, Tensor] = {}
    entries: dict[str, dict[str, Any]] = {}
    aliases = alias_names(model)
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if name in aliases:  # a tied tensor is stored once, under its first name; loading ties it again
            entries[name] = {"shape": list(tensor.shape), "dtype": _dtype_name(tensor.dtype), "encoding": "alias"}
            entries[name]["of"] = aliases[name]
            continue
        stored = tensor.to(DTYPES[dtype]) if tensor.is_floating_point() else tensor
        tensors[name] = stored.contiguous().clone()
        entries[name] = {
            "shape": list(tensor.shape),
            "dtype": _dtype_name(tensor.dtype),
            "stored_dtype": _dtype_name(stored.dtype),
            "encoding": "dense",
            "nnz": int(torch.count_nonzero(tensor)),
            "masked": False,
        }
    meta = {
        "format": "compact",
        "version": VERSION,
        "arch": arch,
        "dtype": dtype,
        "params": sum(p.numel() for p in model.parameters()),
        "modules": modules,
        "counts": head_counts(model),
        "tensors": entries,
        "extra": metadata or {},
    }
    header = {"prunekit": json.dumps(meta, default=str, separators=(",", ":"))}
    return atomic_write_bytes(path, safetensors.torch.save(tensors, metadata=header))


def load_compact(
    path: PathLike,
    *,
    builder: Callable[[Any], nn.Module] | None = None,
    map_location: Any = "cpu",
    max_bytes: int | None = None,
) -> nn.Module:
    """Rebuild the thinner model recorded in a compact file, in eval mode: the zoo architecture it names, or what
    `builder` builds (`builder(arch)`, or `builder()` for a factory without a required argument), narrowed."""
    meta = read_metadata(path)
    if meta["format"] != "compact":
        raise UserError(f"{path} is a {meta['format']} file, not compact; read it with prunekit.export.load")
    check_data(path, meta, arch.limit(path, max_bytes) if builder is None else None)
    shapes = {k: e.get("shape") if isinstance(e, dict) else None for k, e in meta["tensors"].items()}
    if builder is None:  # narrow and compare on the meta device first; the base network is what gets allocated
        probe = arch.meta_model(meta.get("arch"), path)
        arch.check_budget(probe, path, max_bytes)
        narrow(probe, meta.get("modules"), shapes, path)
        set_counts(probe, meta.get("counts") or {}, path)
        retie(probe, alias_names(probe) | _file_ties(meta["tensors"]), path)
        _check_fits(path, probe, meta["tensors"])
        if probe.arch.get("input_shape"):  # a user's model (package.module:factory) records no input shape
            arch.check_forward(probe, probe.arch["input_shape"], path)
        model = arch.build(meta.get("arch"), path, max_bytes)
    else:
        model = arch.build_with(builder, meta.get("arch"))
    ties = alias_names(model) | _file_ties(meta["tensors"])
    narrow(model, meta.get("modules"), shapes, path)
    set_counts(model, meta.get("counts") or {}, path)
    retie(model, ties, path)
    _check_fits(path, model, meta["tensors"])
    state, _, _ = _read(path)
    model.load_state_dict(state)
    return model.to(map_location).eval()


def narrowed_modules(model: nn.Module, base: nn.Module | None = None) -> dict[str, dict[str, Any]]:
    """The modules whose own tensors differ in shape from the base architecture (`base`, else rebuilt from
    `model.arch`), with their width attributes. Without either, every module of a narrowable type."""
    from prunekit.pruning.structured.widths import base_model

    base = base if base is not None else base_model(model)
    if base is None:
        return {name: _entry(m, name) for name, m in model.named_modules() if _narrowable(m) and _own_tensors(m)}
    base_modules = dict(base.named_modules())
    table = {}
    for name, module in model.named_modules():
        own = {k: tuple(t.shape) for k, t in _own_tensors(module)}
        origin = base_modules.get(name)
        if origin is None:
            arch = getattr(model, "arch", None) or {}
            base_name = arch.get("name", type(base).__name__)
            raise UserError(f"module {name!r} is not in the base architecture {base_name!r}")
        if own == {k: tuple(t.shape) for k, t in _own_tensors(origin)}:
            continue
        table[name] = _entry(module, name)
    return table


def _entry(module: nn.Module, name: str) -> dict[str, Any]:
    attrs = _width_attrs(module, name)
    return {"type": _type_name(module), "attrs": {a: _plain(getattr(module, a)) for a in attrs}}


def _type_name(module: nn.Module) -> str:
    """The class name a file records: a pruned attention is a MultiheadAttention with fewer heads."""
    return getattr(type(module), "compact_type", type(module).__name__)


def _narrowable(module: nn.Module) -> bool:
    from prunekit.pruning.structured.conv1d import is_conv1d

    return any(isinstance(module, kind) for kind in WIDTH_ATTRS) or is_conv1d(module)


def narrow(model: nn.Module, modules: Any, shapes: dict[str, Any], source: PathLike = "the compact table") -> None:
    """Resize the modules in `modules` (a `narrowed_modules` table) of a freshly built base model in place, their
    parameters and buffers to `shapes` (state-dict name -> shape), ready for `load_state_dict`; nothing may widen."""
    from prunekit.pruning.structured.attention import retype

    if not isinstance(modules, dict):
        raise UserError(f"{source} has no module table in its compact metadata; export it again")
    name = "?"
    try:
        for name, spec in modules.items():
            module = model.get_submodule(name)
            if _type_name(module) != spec["type"]:
                raise ValueError(f"is a {type(module).__name__} in the architecture, {spec['type']} in the file")
            allowed = _width_attrs(module, name)
            for attr, value in spec["attrs"].items():
                if attr not in allowed or not _fits(value, getattr(module, attr)):
                    raise ValueError(f"{attr}={value!r} does not narrow {getattr(module, attr)!r}")
                setattr(module, attr, tuple(value) if isinstance(value, list) else value)
            for key, old in list(_own_tensors(module)):
                shape = [int(n) for n in shapes[f"{name}.{key}" if name else key]]
                if len(shape) != old.dim() or not _fits(shape, list(old.shape)):
                    raise ValueError(f"{key} of shape {shape} does not narrow {list(old.shape)}")
                fresh = torch.empty(shape, dtype=old.dtype, device=old.device)
                if isinstance(old, nn.Parameter):
                    setattr(module, key, nn.Parameter(fresh, requires_grad=old.requires_grad))
                else:
                    module._buffers[key] = fresh
            retype(module)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{source} is corrupted: module {name!r}: {exc}") from exc


def head_counts(model: nn.Module) -> dict[str, dict[str, int]]:
    """The head counts stored on modules (`num_heads` of a hand-written attention, which channel pruning lowers when
    whole heads go), by module name."""
    from prunekit.pruning.structured.recording import HEAD_COUNTS

    table = {}
    for name, module in model.named_modules():
        found = {a: v for a in HEAD_COUNTS if type(v := getattr(module, a, None)) is int}
        if found and not isinstance(module, nn.MultiheadAttention):  # its heads are in the module table
            table[name] = found
    return table


def set_counts(model: nn.Module, counts: Any, source: PathLike = "the file") -> None:
    """Lower the head counts a file records; a count may only shrink, never grow."""
    if not isinstance(counts, dict):
        raise UserError(f"{source} is corrupted: its head counts are not a table")
    for name, attrs in counts.items():
        try:
            module = model.get_submodule(name)
            for attr, value in attrs.items():
                if not _fits(value, getattr(module, attr)):
                    raise ValueError(f"{attr}={value!r} does not narrow {getattr(module, attr)!r}")
                setattr(module, attr, value)
        except (AttributeError, TypeError, ValueError) as exc:
            raise UserError(f"{source} is corrupted: head counts of module {name!r}: {exc}") from exc


def _file_ties(entries: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(entry.get("of"))
        for name, entry in entries.items()
        if isinstance(entry, dict) and entry.get("encoding") == "alias"
    }


def retie(model: nn.Module, ties: dict[str, str], source: PathLike = "the file") -> None:
    """Make each parameter named in `ties` (other name -> first name) the very tensor of its first name again, as
    the architecture (or the file) ties them; narrowing replaced them one by one."""
    for name, first in ties.items():
        owner, _, attr = name.rpartition(".")
        try:
            tensor = model.get_parameter(first)
            module = model.get_submodule(owner)
            old = module._parameters[attr]
        except (AttributeError, KeyError) as exc:
            raise UserError(f"{source} is corrupted: tie of {name!r} to {first!r}: {exc}") from exc
        if old is None or old.shape != tensor.shape:
            raise UserError(f"{source} is corrupted: {name!r} is tied to {first!r} of another shape")
        module._parameters[attr] = tensor


def _own_tensors(module: nn.Module) -> list[tuple[str, Tensor]]:
    tensors = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    return [(k, t) for k, t in tensors if t is not None and k not in module._non_persistent_buffers_set]


def _width_attrs(module: nn.Module, name: str) -> tuple[str, ...]:
    from prunekit.pruning.structured.conv1d import is_conv1d

    for kind, attrs in WIDTH_ATTRS.items():
        if isinstance(module, kind):
            return attrs
    if is_conv1d(module):  # GPT-2's transposed Linear
        return ("nf",)
    raise UserError(
        f"module {name!r} ({type(module).__name__}) changed shape but compact files can only narrow "
        f"{', '.join(k.__name__.lstrip('_') for k in WIDTH_ATTRS)} modules"
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fits(value: Any, base: Any) -> bool:
    """A positive int no larger than `base`, or a list of them, element by element."""
    if isinstance(base, (tuple, list)):
        return isinstance(value, list) and len(value) == len(base) and all(map(_fits, value, base))
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= base
