"""How much of the original network a thinner one keeps: widths, parameters and per-layer reports.

The original network is rebuilt from `model.arch` on the meta device (no memory, no weights), so a model loaded
from a compact file still knows the widths it started from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


def output_widths(model: nn.Module) -> dict[str, int]:
    """Output channels (or units) of every Conv/Linear layer, by module name."""
    return {name: int(m.weight.shape[0]) for name, m in model.named_modules() if isinstance(m, LAYERS)}


def original_widths(model: nn.Module) -> dict[str, int]:
    """Output widths of the unpruned architecture; the current widths when the model records no `arch`."""
    base = base_model(model)
    return output_widths(model if base is None else base)


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
    example_input: Tensor | None = None,
    original: Mapping[str, int] | None = None,
) -> float:
    """Fraction of the prunable channels removed so far: over the groups `prune_channels` may prune, each coupled
    group counted once, relative to the original widths (`original`, else rebuilt from `model.arch`)."""
    widths = dict(original) if original is not None else original_widths(model)
    groups = trace(model, ignore, example_input).groups
    total = sum(widths.get(g.name, g.size) for g in groups)
    return 1.0 - sum(g.size for g in groups) / total if total else 0.0


def layer_report(model: nn.Module) -> list[dict]:
    """One entry per Conv/Linear weight against the unpruned architecture, in the summary.json `layers` form:
    `sparsity` is the fraction of its weights physically removed, `units_pruned` of its output units."""
    base = base_model(model) or model
    base_shapes = {name: tuple(m.weight.shape) for name, m in base.named_modules() if isinstance(m, LAYERS)}
    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, LAYERS):
            continue
        shape = tuple(module.weight.shape)
        origin = base_shapes.get(name, shape)
        numel, origin_numel = module.weight.numel(), int(torch.Size(origin).numel())
        rows.append(
            {
                "name": f"{name}.weight",
                "shape": list(shape),
                "original_shape": list(origin),
                "numel": numel,
                "sparsity": round(1.0 - numel / origin_numel, 6),
                "units_pruned": round(1.0 - shape[0] / origin[0], 6),
            }
        )
    return rows
