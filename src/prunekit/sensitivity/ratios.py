"""From a sensitivity scan to per-layer ratios: under a tolerance (the most accuracy each layer may lose on its own)
or under a budget (the fraction of FLOPs, parameters, latency or channels kept), and the uniform split it beats.

Tolerance: each layer gets the largest scanned ratio at which it, and every smaller ratio, loses at most the
tolerance. Budget: one tolerance for all layers is found by bisection, each layer's ratio read off its curve
between scanned points (linear interpolation of the running maximum of its drop, so curves that dip do not
matter); the counts then get single units back, most sensitive layer first, until no layer can keep one more
(`prunekit.pruning.budget.fill`): the cost is at most the target and short of it by less than one unit of any layer
that could still grow. Layers are never pruned beyond the largest scanned ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

from prunekit.common.errors import UserError
from prunekit.pruning.budget import CostModel, fill, minimum_counts, uniform_counts
from prunekit.sensitivity.scan import Sensitivity


@dataclass
class Allocation:
    ratios: dict[str, float]  # layer -> fraction removed
    kept: list[int]
    cost_fraction: float | None = None  # of the budget's resource, when there is one
    tolerance: float | None = None


def ratios_for_tolerance(sens: Sensitivity, tolerance: float) -> Allocation:
    """Per layer, the largest scanned ratio whose drop, and every smaller ratio's, is at most `tolerance`."""
    if tolerance < 0:
        raise UserError(f"sensitivity tolerance must be >= 0, got {tolerance}")
    ratios, kept = {}, []
    for name, size in zip(sens.layers, sens.sizes, strict=True):
        chosen = 0.0
        for r, d in zip(sens.ratios, sens.drop(name), strict=True):
            if d > tolerance + 1e-12:
                break
            chosen = r
        gone = min(round(chosen * size), size - 1) if sens.structure == "channel" else round(chosen * size)
        kept.append(size - gone)
        ratios[name] = gone / size
    return Allocation(ratios, kept, tolerance=tolerance)


def _envelope(sens: Sensitivity, name: str) -> list[tuple[float, float]]:
    """(ratio, running max of the drop) from ratio 0 (drop 0) to the largest scanned ratio."""
    points, worst = [(0.0, 0.0)], 0.0
    for r, d in zip(sens.ratios, sens.drop(name), strict=True):
        worst = max(worst, d)
        points.append((r, worst))
    return points


def _ratio_at(points: list[tuple[float, float]], tolerance: float) -> float:
    """The largest ratio at which the piecewise-linear envelope stays <= tolerance."""
    for (r0, d0), (r1, d1) in zip(points, points[1:], strict=False):
        if d1 > tolerance:
            return r0 if d1 == d0 else r0 + (r1 - r0) * (tolerance - d0) / (d1 - d0)
    return points[-1][0]


def _drop_at(points: list[tuple[float, float]], ratio: float) -> float:
    """The envelope's drop at `ratio` (linear between scanned points)."""
    for (r0, d0), (r1, d1) in zip(points, points[1:], strict=False):
        if ratio <= r1:
            return d0 + (d1 - d0) * (ratio - r0) / (r1 - r0)
    return points[-1][1]


def budget_allocation(sens: Sensitivity, model: CostModel, fraction: float) -> Allocation:
    """Per-layer ratios from one common tolerance, fitted so the cost is exactly `fraction` of the dense cost."""
    if model.names != sens.layers:
        raise ValueError(f"cost model layers {model.names} differ from the scan's {sens.layers}")
    target = fraction * model.dense
    lo = _floor(sens)
    envelopes = [_envelope(sens, n) for n in sens.layers]

    def kept_at(tolerance: float) -> list[float]:
        return [1.0 - _ratio_at(env, tolerance) for env in envelopes]

    def cost(keep: list[float]) -> float:
        return model.cost([min(max(round(k * s), m), s) for k, s, m in zip(keep, model.sizes, lo, strict=True)])

    high = max(d for env in envelopes for _, d in env) + 1.0
    if cost(kept_at(high)) > target:
        worst = max(sens.ratios)
        raise UserError(
            f"budget {model.kind} {fraction} is out of reach with every layer pruned at the largest scanned ratio "
            f"({worst}): scan larger ratios or raise the budget"
        )
    low = 0.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if cost(kept_at(mid)) <= target else (mid, high)
    keep = kept_at(high)
    counts = [min(max(round(k * s), m), s) for k, s, m in zip(keep, model.sizes, lo, strict=True)]

    def harm(i: int, kept: int) -> float:  # the most sensitive layer (at its current ratio) gets units back first
        return _drop_at(envelopes[i], 1.0 - kept / model.sizes[i])

    counts = fill(model, target, counts, harm)
    return Allocation(_removed(sens, counts), counts, model.fraction(counts), tolerance=high)


def uniform_allocation(sens: Sensitivity, model: CostModel, fraction: float) -> Allocation:
    """The same ratio for every layer, fitted so the cost is exactly `fraction` of the dense cost."""
    counts = uniform_counts(model, fraction * model.dense, _floor(sens))
    return Allocation(_removed(sens, counts), counts, model.fraction(counts))


def _floor(sens: Sensitivity) -> list[int]:
    """No layer is pruned beyond the largest scanned ratio (nor below one channel)."""
    floor = 1 if sens.structure == "channel" else 0
    return minimum_counts(sens.sizes, 1.0 - max(sens.ratios), floor=floor)


def _removed(sens: Sensitivity, counts: list[int]) -> dict[str, float]:
    return {n: (s - k) / s for n, s, k in zip(sens.layers, sens.sizes, counts, strict=True)}
