"""Which channel groups must stay whole, and why: one reason per group, in words that say what to do.

A group stays whole when removing its channels would break something the dependency graph does not see or that
is not a plain channel removal: the output layer's width, layers the user asked to keep, tied weights (the tie
would break), parameters read outside their layer, recurrent layers, the embedding width of
nn.MultiheadAttention (its heads are pruned instead), normalisation across channels (LayerNorm, GroupNorm:
removing some channels changes the others), computed weights (weight_norm, parametrizations) and grouped
convolutions whose shape Torch-Pruning cannot keep consistent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch_pruning as tp
from torch import nn

if TYPE_CHECKING:
    from prunekit.pruning.structured.channel_group import ChannelGroup

_ACROSS = (nn.LayerNorm, nn.GroupNorm, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))


@dataclass
class Facts:
    """What the reasons need to know about a model: kept layers (name -> why), parameter holders (every module
    attribute holding each parameter, `name.attr`), direct reads (holder -> module whose code read it)."""

    model: nn.Module
    protected: dict[str, str]
    holders: dict[int, list[str]]
    direct: dict[str, str]

    @classmethod
    def of(cls, model: nn.Module, protected: dict[str, str], direct: dict[str, str]) -> Facts:
        holders: dict[int, list[str]] = defaultdict(list)
        for name, module in model.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                holders[id(p)].append(f"{name}.{pname}" if name else pname)
        return cls(model, protected, dict(holders), direct)

    def own(self, name: str, module: nn.Module) -> list[str]:
        """Reasons about the parameters `module` holds itself: a tie, or a read outside the module."""
        found = []
        for p in module.parameters(recurse=False):
            held = self.holders.get(id(p), [])
            if len(held) > 1:
                found.append(
                    f"{held[0]!r} is tied to {', '.join(map(repr, held[1:]))} (one tensor): its channels stay so "
                    "that the tie holds"
                )
            for holder in held:
                if holder in self.direct:
                    found.append(
                        f"{holder!r} is read directly by the code of {self.direct[holder]!r}, which the tracer "
                        "cannot follow; call the layer instead, or add it to ignore"
                    )
        return found


def reason(group: ChannelGroup, facts: Facts) -> str | None:
    """Why `group` must stay whole, or None when it may be pruned."""
    for m in group.members:
        if m.role == "out" and m.name in facts.protected:
            return f"the width of {m.name!r} stays ({facts.protected[m.name]})"
    for m in group.members:
        found = _member(m.name, m.target, facts)
        if found:
            return found
    return None


def _member(name: str, target: object, facts: Facts) -> str | None:
    if isinstance(target, nn.Parameter):
        owner = _owner(facts, target)
        if isinstance(owner, nn.RNNBase):
            return _recurrent(name.rpartition(".")[0], owner)
        return f"parameter {name!r} is used directly in forward, not through a layer the tracer can resize"
    if isinstance(target, nn.RNNBase):
        return _recurrent(name, target)
    if isinstance(target, nn.MultiheadAttention):
        return f"{name!r} (MultiheadAttention) keeps its embedding width; its heads are pruned instead"
    if isinstance(target, _ACROSS):
        return (
            f"{type(target).__name__} {name!r} normalises across these channels, so removing some would change "
            "the others"
        )
    if isinstance(target, nn.modules.conv._ConvNd) and target.groups > 1:
        if target.transposed:
            return f"grouped ConvTranspose {name!r} (groups={target.groups}) cannot be narrowed consistently"
        if target.groups == target.out_channels and target.in_channels != target.out_channels:
            return (
                f"convolution {name!r} has groups=out_channels={target.groups} but {target.in_channels} input "
                "channels, which Torch-Pruning would narrow inconsistently"
            )
    if isinstance(target, nn.Module):
        if hasattr(target, "weight") and "weight" not in target._parameters:
            return (
                f"{name!r} computes its weight (weight_norm or a parametrization); remove that before channel pruning"
            )
        found = facts.own(name, target)
        if found:
            return found[0]
    return None


def _recurrent(name: str, module: nn.Module) -> str:
    return f"recurrent layer {name!r} ({type(module).__name__}) is not channel-pruned: its input and hidden widths stay"


def _owner(facts: Facts, param: nn.Parameter) -> nn.Module | None:
    for holder in facts.holders.get(id(param), []):
        return facts.model.get_submodule(holder.rpartition(".")[0])
    return None


def parameter_name(graph: tp.DependencyGraph, param: nn.Parameter) -> str:
    return graph._param_to_name.get(param, "a parameter")
