"""Which channels go: a target fraction of the original channels, split layer by layer or ranked globally.

`fraction` always counts against the original widths, so iterative rounds call with growing targets and each
removes only what is still missing. Every group keeps at least `min_channels`; channels never come back.
Per-group `ratios` (from a sensitivity scan, AMC or `prune.layer_ratio`) fix the fraction removed from the groups
they name; `fraction` then applies to the others (each of them, or all of them together under a global ranking).
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
    min_channels: int = 1,
    ratios: Mapping[str, float] | None = None,
) -> dict[str, Tensor]:
    """Indices (sorted, int64) of the channels to remove from each group, lowest scores first.

    layerwise: each group ends with original - round(fraction * original) channels (at least min_channels).
    global: round(fraction * sum of originals) channels are gone in total, chosen by scores normalised to
    mean 1 within each group so that layers of different scale compete fairly.
    ratios: group name -> fraction of its original channels removed, for the groups it names (any scope).
    """
    if scope not in SCOPES:
        raise UserError(f"unknown channel pruning scope {scope!r}: known: {', '.join(SCOPES)}")
    for name, s in scores.items():
        if s.shape != (sizes[name],):
            raise ValueError(f"criterion gave {list(s.shape)} scores for group {name!r} of {sizes[name]} channels")
        if not torch.isfinite(s).all():
            raise UserError(f"criterion produced non-finite scores for group {name!r}")
    ratios = dict(ratios or {})
    unknown = sorted(set(ratios) - set(sizes))
    if unknown:
        raise UserError(f"per-layer ratios name no prunable channel group: {unknown}; groups: {sorted(sizes)}")
    for name, r in ratios.items():
        if not 0.0 <= r < 1.0:
            raise UserError(f"per-layer ratio of {name!r} must be in [0, 1), got {r}")
    floor = {n: min(min_channels, sizes[n]) for n in sizes}

    def count(n: str, f: float) -> int:
        return max(0, sizes[n] - max(original[n] - round(f * original[n]), floor[n]))

    if scope == "layerwise":
        return {n: _lowest(scores[n], count(n, ratios.get(n, fraction))) for n in sizes}
    fixed = {n: _lowest(scores[n], count(n, r)) for n, r in ratios.items()}
    rest = [n for n in sizes if n not in ratios]
    removed = sum(original[n] - sizes[n] for n in rest)
    extra = round(fraction * sum(original[n] for n in rest)) - removed
    chosen = _global({n: scores[n] for n in rest}, {n: sizes[n] for n in rest}, floor, max(0, extra)) if rest else {}
    return {n: fixed[n] if n in fixed else chosen[n] for n in sizes}


def _lowest(score: Tensor, count: int) -> Tensor:
    """The `count` lowest-scoring channels; ties go to the lower index, for determinism."""
    order = torch.argsort(score.float().cpu(), stable=True)
    return order[:count].sort().values


def _global(scores: dict[str, Tensor], sizes: dict[str, int], floor: dict[str, int], extra: int) -> dict[str, Tensor]:
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
    chosen[order[: min(extra, capacity)]] = True
    out, start = {}, 0
    for n in names:
        out[n] = torch.nonzero(chosen[start : start + sizes[n]]).flatten()
        start += sizes[n]
    return out


def _highest(score: Tensor, count: int) -> Tensor:
    return torch.argsort(score, descending=True, stable=True)[:count]
