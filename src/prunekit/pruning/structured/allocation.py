"""Which channels go: a target fraction of the original channels, split layer by layer or ranked globally.

`fraction` always counts against the original widths, so iterative rounds call with growing targets and each
removes only what is still missing. Every group keeps at least `min_channels`; channels never come back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from prunekit.errors import UserError

SCOPES = ("layerwise", "global")


def select(
    scores: dict[str, Tensor],
    sizes: dict[str, int],
    original: dict[str, int],
    fraction: float,
    *,
    scope: str = "layerwise",
    min_channels: int | Mapping[str, int] = 1,
    weights: Mapping[str, int] | None = None,
) -> dict[str, Tensor]:
    """Indices (sorted, int64) of the channels to remove from each group, lowest scores first.

    layerwise: each group ends with original - round(fraction * original) channels (at least min_channels).
    global: round(fraction * sum of originals) channels are gone in total, chosen by scores normalised to
    mean 1 within each group so that layers of different scale compete fairly.
    min_channels: one floor for every group, or a floor per group name.
    weights: channels per scored unit of each group (an attention head is head_dim channels), so that a global
    `fraction` counts channels; default 1 (every unit is one channel).
    """
    if scope not in SCOPES:
        raise UserError(f"unknown channel pruning scope {scope!r}: known: {', '.join(SCOPES)}")
    for name, s in scores.items():
        if s.shape != (sizes[name],):
            raise ValueError(f"criterion gave {list(s.shape)} scores for group {name!r} of {sizes[name]} channels")
        if not torch.isfinite(s).all():
            raise UserError(f"criterion produced non-finite scores for group {name!r}")
    floor = {n: min(min_channels if isinstance(min_channels, int) else min_channels[n], sizes[n]) for n in sizes}
    if scope == "layerwise":
        counts = {n: max(0, sizes[n] - max(original[n] - round(fraction * original[n]), floor[n])) for n in sizes}
        return {n: _lowest(scores[n], counts[n]) for n in sizes}
    w = {n: int(weights.get(n, 1)) if weights else 1 for n in sizes}
    removed = sum((original[n] - sizes[n]) * w[n] for n in sizes)
    extra = round(fraction * sum(original[n] * w[n] for n in sizes)) - removed
    return _global(scores, sizes, floor, max(0, extra), w if any(v != 1 for v in w.values()) else None)


def _lowest(score: Tensor, count: int) -> Tensor:
    """The `count` lowest-scoring channels; ties go to the lower index, for determinism."""
    order = torch.argsort(score.float().cpu(), stable=True)
    return order[:count].sort().values


def _global(
    scores: dict[str, Tensor], sizes: dict[str, int], floor: dict[str, int], extra: int, weights: dict[str, int] | None
) -> dict[str, Tensor]:
    """Lowest normalised scores first until `extra` channels are chosen; with `weights`, a unit of several channels
    is taken only while it fits in what is left."""
    names = list(sizes)
    flat = []
    for n in names:
        s = scores[n].double().cpu()
        mean = s.mean()
        s = s / mean if mean > 0 else s
        s[_highest(s, floor[n])] = math.inf  # each group's best min_channels are never candidates
        flat.append(s)
    order = torch.argsort(torch.cat(flat), stable=True)
    capacity = sum(sizes[n] - floor[n] for n in names)
    chosen = torch.zeros(order.numel(), dtype=torch.bool)
    if weights is None:
        chosen[order[: min(extra, capacity)]] = True
    else:
        cost = torch.cat([torch.full((sizes[n],), weights[n]) for n in names]).tolist()
        finite = torch.isfinite(torch.cat(flat)).tolist()
        left = extra
        for i in order.tolist():
            if finite[i] and cost[i] <= left:
                chosen[i] = True
                left -= cost[i]
    out, start = {}, 0
    for n in names:
        out[n] = torch.nonzero(chosen[start : start + sizes[n]]).flatten()
        start += sizes[n]
    return out


def _highest(score: Tensor, count: int) -> Tensor:
    return torch.argsort(score, descending=True, stable=True)[:count]
