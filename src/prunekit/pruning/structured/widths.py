"""How much of the original network a thinner one keeps: widths, parameters and per-layer reports.

The original network is rebuilt from `model.arch` on the meta device (no memory, no weights), so a model loaded
from a compact file still knows the widths it started from; a user's model has no `arch`, so callers that know
its unpruned form (the runner builds it with the task's factory) pass it as `base`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.pruning.structured.groups import LAYERS, trace


def base_model(model: nn.Module) -> nn.Module | None:
    """The unpruned architecture of `model` on the meta device, or None when it records no `arch`."""
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        return None
    from prunekit.models import create_model

    with torch.device("meta"):
        return create_model(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in arch.items()})


def layer_width(module: nn.Module) -> int | None:
    """Output channels of a Conv/ConvTranspose, units of a Linear, embedding width, or attention heads x head_dim."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return int(module.out_channels)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    if isinstance(module, nn.Embedding):
        return int(module.embedding_dim)
    if isinstance(module, nn.MultiheadAttention):
        return int(module.num_heads * module.head_dim)
    return None


def output_widths(model: nn.Module) -> dict[str, int]:
    """The width (`layer_width`) of every layer that has one, by module name."""
    return {name: w for name, m in model.named_modules() if (w := layer_width(m)) is not None}


def original_widths(model: nn.Module, base: nn.Module | None = None) -> dict[str, int]:
    """Output widths of the unpruned architecture (`base`, else rebuilt from `model.arch`); the current widths when
    neither is known."""
    base = base if base is not None else base_model(model)
    return output_widths(model if base is None else base)


def alignment(original: int, round_to: int) -> int:
    """The multiple a group's width is rounded to: `round_to` when the group has at least 2 * round_to channels
    originally (so at least one aligned width below the original exists), else 1 (exact)."""
    return round_to if round_to > 1 and original >= 2 * round_to else 1


def aligned_grid(size: int, multiple: int, min_channels: int = 1) -> list[int]:
    """The widths a group of `size` channels may keep, ascending: multiples of `multiple` from the smallest one
    holding `min_channels`, and `size` itself (keeping every channel is always allowed)."""
    floor = -(-max(1, min_channels) // multiple) * multiple
    return sorted(set(range(floor, size + 1, multiple)) | {size})


def group_widths(model: nn.Module, ignore: Iterable[str] = (), example_input: Tensor | None = None) -> dict[str, int]:
    """Current width of every prunable channel group, by name (its first producing layer), in network order."""
    return {g.name: g.size for g in trace(model, ignore, example_input).groups}


def physical_params(model: nn.Module) -> int:
    """Parameters physically present (a thinner layer simply has fewer)."""
    return sum(p.numel() for p in model.parameters())


def channel_sparsity(
    model: nn.Module,
    *,
    ignore: Iterable[str] = (),
    example_input: Any = None,
    original: Mapping[str, int] | None = None,
) -> float:
    """Fraction of the prunable channels removed so far: over the groups `prune_channels` may prune, each coupled
    group counted once, relative to the original widths (`original`, else rebuilt from `model.arch`)."""
    widths = dict(original) if original is not None else original_widths(model)
    groups = trace(model, ignore, example_input).groups
    total = sum(widths.get(g.name, g.size) for g in groups)
    return 1.0 - sum(g.size for g in groups) / total if total else 0.0


def layer_report(model: nn.Module, base: nn.Module | None = None) -> list[dict]:
    """One entry per Conv/Linear weight (and attention input projection) against the unpruned architecture
    (`base`, else rebuilt from `model.arch`), in the summary.json `layers` form: `sparsity` is the fraction of its
    weights physically removed, `units_pruned` of its output units (heads x head_dim for attention)."""
    base = base if base is not None else (base_model(model) or model)
    base_modules = dict(base.named_modules())
    rows = []
    for name, module in model.named_modules():
        weight = _weight(module)
        if weight is None:
            continue
        origin_module = base_modules.get(name, module)
        origin_weight = _weight(origin_module)
        shape = tuple(weight[1].shape)
        origin = tuple(origin_weight[1].shape) if origin_weight is not None else shape
        numel, origin_numel = weight[1].numel(), int(torch.Size(origin).numel())
        width, origin_width = layer_width(module), layer_width(origin_module) or layer_width(module)
        rows.append(
            {
                "name": f"{name}.{weight[0]}" if name else weight[0],
                "shape": list(shape),
                "original_shape": list(origin),
                "numel": numel,
                "sparsity": round(1.0 - numel / origin_numel, 6),
                "units_pruned": round(1.0 - width / origin_width, 6),
            }
        )
    return rows


def _weight(module: nn.Module) -> tuple[str, Tensor] | None:
    if isinstance(module, LAYERS):
        return "weight", module.weight
    if isinstance(module, nn.MultiheadAttention):
        packed = module.in_proj_weight is not None
        return ("in_proj_weight", module.in_proj_weight) if packed else ("q_proj_weight", module.q_proj_weight)
    return None
