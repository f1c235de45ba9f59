"""Which channels go: a target fraction of the original channels, split layer by layer or ranked globally.

`fraction` always counts against the original widths, so iterative rounds call with growing targets and each
removes only what is still missing. Channels never come back.

Widths are aligned: a group whose original width is at least 2 * `round_to` keeps a multiple of `round_to` channels
(or all it has), because CPU and GPU kernels run fastest on such widths and an odd width costs more than its
multiply-adds say (see prunekit.pruning.structured.widths.aligned_grid). "Meeting the budget" then means:
- every group keeps at least `min_channels` (rounded up to its multiple) unless it has fewer to begin with;
- layerwise: every group keeps one of the two widths of its grid around its exact share
  (original - round(fraction * original)), and the groups rounded up are those with the largest remainders, as
  long as each one brings the total removed closer to the sum of the exact shares (ties remove more);
- global: channels leave in blocks (one grid step of the lowest-scoring channels of a group), cheapest mean score
  first, each block taken while it brings the total removed closer to round(fraction * sum of originals) (ties
  remove more).
Either way the total removed ends within half of the largest multiple of the target, unless the groups run out of
removable channels; with `round_to` 1 both are exact, as before alignment existed.

Per-group `ratios` (from a sensitivity scan, AMC or `prune.layer_ratio`) fix the fraction removed from the groups
they name, at exact widths (budgets computed from ratios assume exact widths); `fraction` then applies to the others
(each of them, or all of them together under a global ranking).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping

import torch
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.pruning.structured.widths import aligned_grid, alignment

SCOPES = ("layerwise", "global")


def select(
    scores: dict[str, Tensor],
    sizes: dict[str, int],
    original: dict[str, int],
    fraction: float,
    *,
    scope: str = "layerwise",
    min_channels: int | Mapping[str, int] = 1,
    round_to: int = 1,
    weights: Mapping[str, int] | None = None,
    ratios: Mapping[str, float] | None = None,
) -> dict[str, Tensor]:
    """Indices (sorted, int64) of the channels to remove from each group, lowest scores first within a group.

    global ranks scores normalised to mean 1 within each group so that layers of different scale compete fairly.
    min_channels: one floor for every group, or a floor per group name.
    weights: channels per scored unit of each group (an attention head is head_dim channels), so that a global
    `fraction` counts channels; default 1 (every unit is one channel). Groups of several-channel units are never
    rounded (their units are already whole heads), and their units are taken only while they fit in the budget.
    ratios: group name -> fraction of its original channels removed, for the groups it names (any scope).
    """
    if scope not in SCOPES:
        raise UserError(f"unknown channel pruning scope {scope!r}: known: {', '.join(SCOPES)}")
    if int(round_to) < 1:
        raise UserError(f"round_to must be at least 1, got {round_to}")
    for name, s in scores.items():
        if s.shape != (sizes[name],):
            raise UserError(f"criterion gave {list(s.shape)} scores for group {name!r} of {sizes[name]} channels")
        if not torch.isfinite(s).all():
            raise UserError(f"criterion produced non-finite scores for group {name!r}")
    ratios = dict(ratios or {})
    unknown = sorted(set(ratios) - set(sizes))
    if unknown:
        raise UserError(f"per-layer ratios name no prunable channel group: {unknown}; groups: {sorted(sizes)}")
    for name, r in ratios.items():
        if not 0.0 <= r < 1.0:
            raise UserError(f"per-layer ratio of {name!r} must be in [0, 1), got {r}")
    w = {n: int(weights.get(n, 1)) if weights else 1 for n in sizes}
    floor = {n: min_channels if isinstance(min_channels, int) else min_channels[n] for n in sizes}

    def multiple(n: str) -> int:  # named ratios are met exactly (their budgets were computed on exact widths)
        return 1 if w[n] != 1 or n in ratios else alignment(original[n], round_to)

    grids = {n: aligned_grid(sizes[n], multiple(n), floor[n]) for n in sizes}
    kept = {n: _layerwise({n: grids[n]}, original, r)[n] for n, r in ratios.items()}
    rest = [n for n in sizes if n not in ratios]
    if scope == "layerwise":
        kept.update(_layerwise({n: grids[n] for n in rest}, original, fraction))
        return {n: _lowest(scores[n], sizes[n] - kept[n]) for n in sizes}
    chosen = {n: _lowest(scores[n], sizes[n] - kept[n]) for n in ratios}
    if rest:
        removed = sum((original[n] - sizes[n]) * w[n] for n in rest)
        extra = round(fraction * sum(original[n] * w[n] for n in rest)) - removed
        chosen.update(_global({n: scores[n] for n in rest}, {n: grids[n] for n in rest}, max(0, extra), w))
    return {n: chosen[n] for n in sizes}


def _lowest(score: Tensor, count: int) -> Tensor:
    """The `count` lowest-scoring channels; ties go to the lower index, for determinism."""
    return _ascending(score)[:count].sort().values


def _ascending(score: Tensor) -> Tensor:
    return torch.argsort(score.float().cpu(), stable=True)


def _layerwise(grids: dict[str, list[int]], original: dict[str, int], fraction: float) -> dict[str, int]:
    """Kept width per group: a grid neighbour of its exact share, rounded up by largest remainder (Hamilton)."""
    share = {n: original[n] - round(fraction * original[n]) for n in grids}
    low = {n: max([k for k in grid if k <= share[n]], default=grid[0]) for n, grid in grids.items()}
    high = {n: min([k for k in grid if k >= share[n]], default=grid[-1]) for n, grid in grids.items()}
    excess = sum(share[n] - low[n] for n in grids)  # channels removed beyond the shares when all round down
    remainder = {n: (share[n] - low[n]) / (high[n] - low[n]) if high[n] > low[n] else 0.0 for n in grids}
    kept = dict(low)
    for n in sorted(grids, key=lambda n: -remainder[n]):  # stable: module order breaks ties
        step = high[n] - low[n]
        if step and abs(excess - step) < abs(excess):
            kept[n], excess = high[n], excess - step
    return kept


def _global(
    scores: dict[str, Tensor], grids: dict[str, list[int]], extra: int, weights: dict[str, int]
) -> dict[str, Tensor]:
    """Remove blocks of low normalised scores, cheapest first, while the total (in channels: a block of units costs
    units x weight) gets closer to `extra`; blocks of several-channel units never overshoot it."""
    order, normalised, heap = {}, {}, []
    for position, (n, grid) in enumerate(grids.items()):
        s = scores[n].double().cpu()
        mean = s.mean()
        normalised[n] = s / mean if mean > 0 else s
        order[n] = _ascending(normalised[n])
        _push(heap, n, position, normalised[n], order[n], grid, grid[-1])
    removed = {n: 0 for n in grids}
    total = 0
    while heap and total < extra:
        _, position, _, n, block = heapq.heappop(heap)
        cost = block * weights[n]
        over = total + cost - extra
        if over > 0 and (weights[n] != 1 or over > extra - total):  # too far past the budget: this group stops here
            continue
        removed[n] += block
        total += cost
        width = grids[n][-1] - removed[n]
        _push(heap, n, position, normalised[n], order[n], grids[n], width)
    return {n: order[n][: removed[n]].sort().values for n in grids}


def _push(heap: list, name: str, position: int, score: Tensor, order: Tensor, grid: list[int], width: int) -> None:
    """Queue the group's next block: from `width` down to the grid point below it, keyed by its mean score."""
    below = bisect.bisect_left(grid, width)  # grid[below - 1] is the next smaller allowed width
    if below == 0:
        return
    size = width - grid[below - 1]
    start = grid[-1] - width  # channels already removed from this group, in ascending score order
    block = order[start : start + size]
    first = int(block.min())  # ties between equal means: the block holding the lower channel index goes first
    heapq.heappush(heap, (float(score[block].mean()), position, first, name, size))
