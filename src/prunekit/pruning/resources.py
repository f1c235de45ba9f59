"""The cost model of a resource for a model pruned per layer: one entry point for AMC and sensitivity budgets.

structure "channel": layers are channel groups (traced once), kinds flops | params | latency | channels.
structure "unstructured": layers are prunable weight tensors, kinds flops | params | weights.
"channels" / "weights" count the kept units themselves (the fraction of prunable channels or weights kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from prunekit.common.errors import UserError
from prunekit.pruning.budget import CostModel, linear_cost

CHANNEL_KINDS = ("flops", "params", "latency", "channels")
TENSOR_KINDS = ("flops", "params", "weights")


def cost_model(
    model: nn.Module, structure: str, kind: str, example: Any, *, ignore: Sequence[str] = (), names: list[str] = ()
) -> CostModel:
    """cost(kept per layer) of `kind`; `ignore` (channel) or `names` (the tensors, unstructured) set the layers."""
    if structure == "channel":
        if kind not in CHANNEL_KINDS:
            raise UserError(f"channel budget kind {kind!r} unknown: known: {', '.join(CHANNEL_KINDS)}")
        from prunekit.pruning.structured.groups import trace

        if kind == "latency":
            from prunekit.pruning.structured.latency_costs import latency_costs

            return latency_costs(model, example, ignore)
        groups = trace(model, ignore, example).groups
        if kind == "channels":
            sizes = [g.size for g in groups]
            return linear_cost(kind, [g.name for g in groups], sizes, [1.0] * len(sizes), 0.0, "channels")
        from prunekit.pruning.structured.costs import channel_costs

        return channel_costs(model, groups, example, kind)
    if kind not in TENSOR_KINDS:
        hint = " (latency needs channel pruning: zeroed weights do not make dense kernels faster)"
        raise UserError(f"fine-grained budget kind {kind!r} unknown{hint if kind == 'latency' else ''}")
    if kind == "weights":
        params = dict(model.named_parameters())
        sizes = [params[n].numel() for n in names]
        return linear_cost(kind, list(names), sizes, [1.0] * len(sizes), 0.0, "weights")
    from prunekit.pruning.structured.costs import tensor_costs

    return tensor_costs(model, list(names), example, kind)
