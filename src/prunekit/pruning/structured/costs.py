"""What channel pruning leaves of a network's FLOPs and parameters, as exact functions of the kept channels per group.

A convolution's (or linear layer's) FLOPs and weights are proportional to its input channels times its output
channels, so with `k_g` of the `s_g` channels of each group g kept, a layer costs its dense cost times its kept
fraction of inputs times its kept fraction of outputs (grouped/depthwise convolutions, whose groups shrink with the
channels, only the latter). Per-channel layers (BatchNorm) keep their share of parameters. Everything no group
touches is a fixed cost. The result equals what `torch.utils.flop_counter` and a parameter count measure on the
physically pruned network (tested), without building it, so AMC can cost thousands of candidate policies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from prunekit.pruning.budget import CostModel, linear_cost
from prunekit.pruning.flops import example_flops
from prunekit.pruning.structured.groups import LAYERS, ChannelGroup


def member_shares(groups: list[ChannelGroup], role: str) -> dict[nn.Module, list[tuple[int, int]]]:
    """module -> [(group index, channels of that module the group holds)] for the members of one role."""
    out: dict[nn.Module, list[tuple[int, int]]] = {}
    for i, g in enumerate(groups):
        for m in g.role(role):
            out.setdefault(m.module, []).append((i, len(set(m.idxs))))
    return out


def kept_fraction(width: int, shares: list[tuple[int, int]], fractions: Sequence[float]) -> float:
    """Kept fraction of a module's `width` channels when each share keeps fractions[group] of its channels."""
    lost = sum(n * (1.0 - fractions[i]) for i, n in shares)
    return (width - lost) / width if width else 1.0


def in_width(layer: nn.Module) -> int:
    return int(layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels)


def channel_costs(model: nn.Module, groups: list[ChannelGroup], example: Any, kind: str) -> CostModel:
    """FLOPs (per forward pass of `example`) or parameters of `model` with only some channels of `groups` kept."""
    outs, ins, norms = member_shares(groups, "out"), member_shares(groups, "in"), member_shares(groups, "norm")
    names, sizes = [g.name for g in groups], [g.size for g in groups]
    layers = [m for m in model.modules() if isinstance(m, LAYERS) and (m in outs or m in ins)]
    grouped = {m for m in layers if getattr(m, "groups", 1) > 1}  # depthwise: the groups shrink with the channels
    if kind == "flops":
        total, per_module = example_flops(model, example)
        by_module = {m: float(per_module.get(n, 0)) for n, m in model.named_modules()}
        dense = {m: (by_module[m], 0.0) for m in layers}
        fixed = total - sum(by_module[m] for m in layers)
        per_channel: dict[nn.Module, float] = {}
    else:
        dense = {m: (float(m.weight.numel()), float(m.bias.numel()) if m.bias is not None else 0.0) for m in layers}
        per_channel = {m: float(sum(p.numel() for p in m.parameters(recurse=False))) for m in norms}
        touched = sum(sum(w) for w in dense.values()) + sum(per_channel.values())
        fixed = sum(p.numel() for p in model.parameters()) - touched

    def cost(kept: Sequence[int]) -> float:
        fractions = [k / s for k, s in zip(kept, sizes, strict=True)]
        total_cost = fixed
        for m in layers:
            f_out = kept_fraction(int(m.weight.shape[0]), outs.get(m, []), fractions)
            f_in = 1.0 if m in grouped else kept_fraction(in_width(m), ins.get(m, []), fractions)
            weight, bias = dense[m]
            total_cost += weight * f_out * f_in + bias * f_out
        for m, count in per_channel.items():
            width = int(getattr(m, "num_features", 0) or m.weight.shape[0])
            total_cost += count * kept_fraction(width, norms[m], fractions)
        return total_cost

    return CostModel(kind, names, sizes, cost, "FLOPs" if kind == "flops" else "params")


def tensor_costs(model: nn.Module, names: list[str], example: Any, kind: str) -> CostModel:
    """FLOPs or parameters of `model` with only some weights of each named tensor kept (fine-grained pruning):
    a pruned weight skips its multiply-adds (the count ShrinkBench reports) and is not a parameter."""
    params = dict(model.named_parameters())
    sizes = [params[n].numel() for n in names]
    if kind == "flops":
        total, per_module = example_flops(model, example)
        per_weight = [per_module.get(n.rsplit(".", 1)[0], 0) / s for n, s in zip(names, sizes, strict=True)]
        fixed = total - sum(w * s for w, s in zip(per_weight, sizes, strict=True))
        return linear_cost(kind, names, sizes, per_weight, fixed, "FLOPs")
    fixed = sum(p.numel() for p in model.parameters()) - sum(sizes)
    return linear_cost(kind, names, sizes, [1.0] * len(sizes), fixed, "params")
