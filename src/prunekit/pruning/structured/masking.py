"""Channels removed without surgery: the layers that consume a group's channels see zeros in their place.

Every path from a group's channels to the network's output goes through a Conv/Linear layer that consumes them
(the group's "in" members), so zeroing those inputs computes exactly what the physically thinner network computes,
up to float summation order, while the model's weights are never touched. Sensitivity scans and AMC's episodes
evaluate thousands of candidate widths this way; the chosen widths are then cut for real by `prune_channels`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from prunekit.pruning.structured.groups import ChannelGroup


def lowest_first(scores: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each group's channels in the order channel selection removes them: lowest score first, ties by index
    (the order of `prunekit.pruning.structured.allocation.select`)."""
    return {name: torch.argsort(s.float().cpu(), stable=True) for name, s in scores.items()}


def dropped(order: Mapping[str, Tensor], groups: Sequence[ChannelGroup], kept: Sequence[int]) -> dict[str, Tensor]:
    """The channels each group loses when it keeps `kept[i]` of them (group order)."""
    return {g.name: order[g.name][: g.size - k] for g, k in zip(groups, kept, strict=True)}


def input_masks(groups: Sequence[ChannelGroup], drop: Mapping[str, Tensor]) -> dict[nn.Module, Tensor]:
    """consumer module -> boolean mask over its input channels (False = removed)."""
    masks: dict[nn.Module, Tensor] = {}
    for g in groups:
        gone = set(drop.get(g.name, torch.empty(0, dtype=torch.long)).tolist())
        if not gone:
            continue
        for member in g.role("in"):
            layer = member.module
            width = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
            mask = masks.setdefault(layer, torch.ones(width, dtype=torch.bool))
            for idx, root in zip(member.idxs, member.root_idxs, strict=True):
                if root in gone:
                    mask[idx] = False
    return masks


@contextlib.contextmanager
def channels_removed(groups: Sequence[ChannelGroup], drop: Mapping[str, Tensor]) -> Iterator[None]:
    """Within the block, the model computes as if `drop[group]` channels were cut from each group."""
    masks = input_masks(groups, drop)
    cache: dict[tuple[nn.Module, torch.device, torch.dtype], Tensor] = {}

    def hook(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        key = (module, x.device, x.dtype)
        if key not in cache:
            mask = masks[module].to(device=x.device, dtype=x.dtype)
            cache[key] = mask if isinstance(module, nn.Linear) else mask.view(-1, *[1] * (x.dim() - 2))
        return (x * cache[key], *args[1:])

    handles = [m.register_forward_pre_hook(hook) for m in masks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
