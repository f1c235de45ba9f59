"""Resource budgets over per-layer unit counts, and the clip that makes a sequence of per-layer choices meet one.

A layer here is a prunable unit set: a channel group (channel pruning) or a weight tensor (fine-grained pruning);
a choice is how many of its units are kept. A `CostModel` maps the kept counts of every layer to a cost (FLOPs,
parameters or latency) and is non-decreasing in each count. `Budget` fixes the cost to reach.

`clip_count` is how AMC's resource-constrained episodes meet a budget *by construction*: when layer t is chosen,
its count is clipped to [lower, upper], where
  upper = the most units that keep the budget reachable if every later layer shrinks to its minimum, and
  lower = the fewest units that keep the budget reachable if every later layer stays whole.
After the last layer no budget is left unused beyond the cost of one unit of that layer: the final cost is <= the
target and within one unit of it. `fit_counts` applies the same clip to a whole list of wanted ratios. Splits chosen
all at once (uniform, from a sensitivity scan) round their ratios down to a cost below the target, then `fill` adds
single units where they matter most until no layer can keep one more: the cost is again <= the target and short of
it by less than one unit of any layer that could still grow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prunekit.common.errors import UserError

KINDS = ("flops", "params", "latency", "channels", "weights")
TOLERANCE = 1e-9  # relative slack on float cost sums


@dataclass
class CostModel:
    """cost(kept counts) of a pruned network; `sizes` are the layers' full counts, `names` their names."""

    kind: str
    names: list[str]
    sizes: list[int]
    cost: Callable[[Sequence[int]], float]
    unit: str = ""  # what the cost counts, for reports ("FLOPs", "params", "ms")

    @property
    def dense(self) -> float:
        return self.cost(self.sizes)

    def fraction(self, kept: Sequence[int]) -> float:
        return self.cost(kept) / self.dense


@dataclass(frozen=True)
class Budget:
    """Keep `fraction` of the dense cost of `kind` (e.g. Budget("flops", 0.5): at most half the FLOPs)."""

    kind: str
    fraction: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"budget kind {self.kind!r} unknown: known: {', '.join(KINDS)}")
        if not 0.0 < self.fraction <= 1.0:
            raise UserError(f"budget {self.kind} must be a fraction kept in (0, 1], got {self.fraction}")

    @classmethod
    def parse(cls, spec: dict[str, float] | Budget | None) -> Budget | None:
        """{"flops": 0.5} -> Budget("flops", 0.5); None or {} -> None."""
        if spec is None or isinstance(spec, Budget):
            return spec
        if len(spec) > 1:
            raise UserError(f"a budget names one resource, got {sorted(spec)}")
        return next((cls(k, float(v)) for k, v in spec.items()), None)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """The largest c in [lo, hi] with ok(c), for ok true up to some point and false after; None if ok(lo) fails."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def clip_count(
    model: CostModel,
    target: float,
    decided: Sequence[int],
    want: int,
    lo: Sequence[int],
    hi: Sequence[int],
    use_up: bool = True,
) -> int:
    """Layer t = len(decided): `want` clipped so that `target` stays reachable and is met after the last layer.
    use_up=False caps from above only (the AMC reference's action bound): the budget holds but may be left unused."""
    t = len(decided)
    slack = TOLERANCE * max(abs(target), 1.0)

    def cost(c: int, rest: Sequence[int]) -> float:
        return model.cost([*decided, c, *rest[t + 1 :]])

    upper = _largest(lo[t], hi[t], lambda c: cost(c, lo) <= target + slack)
    if upper is None:
        raise UserError(
            f"budget unreachable: {model.kind} stays above {target:.6g} even with every layer at its minimum"
        )
    if not use_up:
        return max(min(want, upper), lo[t])
    below = _largest(lo[t], hi[t], lambda c: cost(c, hi) < target - slack)  # keeping more than this is needed
    lower = lo[t] if below is None else min(below + 1, hi[t])
    return max(min(want, upper), min(lower, upper))


def fit_counts(
    model: CostModel, target: float | None, ratios: Sequence[float], lo: Sequence[int], hi: Sequence[int] | None = None
) -> list[int]:
    """Kept counts close to `ratios` (kept fractions, layer by layer in order), clipped to meet `target` exactly."""
    hi = list(model.sizes) if hi is None else list(hi)
    counts: list[int] = []
    for t, ratio in enumerate(ratios):
        want = min(max(round(ratio * model.sizes[t]), lo[t]), hi[t])
        counts.append(want if target is None else clip_count(model, target, counts, want, lo, hi))
    return counts


def minimum_counts(sizes: Sequence[int], min_keep: float, floor: int = 1) -> list[int]:
    """Each layer's smallest allowed count: ceil(min_keep * size), at least `floor` (never above the size)."""
    return [min(size, max(floor, math.ceil(min_keep * size - 1e-9))) for size in sizes]


def fill(model: CostModel, target: float, counts: Sequence[int], priority: Callable[[int, int], float]) -> list[int]:
    """Add units one at a time, to the layer of highest priority(layer, kept) among those that still fit, until
    none fits: the cost stays <= target and no layer can keep one more unit without exceeding it."""
    counts = list(counts)
    slack = TOLERANCE * max(abs(target), 1.0)
    while True:
        fits = [
            i
            for i in range(len(counts))
            if counts[i] < model.sizes[i]
            and model.cost([*counts[:i], counts[i] + 1, *counts[i + 1 :]]) <= target + slack
        ]
        if not fits:
            return counts
        best = max(fits, key=lambda i: (priority(i, counts[i]), -i))
        counts[best] += 1


def uniform_counts(model: CostModel, target: float, lo: Sequence[int]) -> list[int]:
    """One kept fraction for every layer, the largest whose rounded counts fit (bisection), then units added to the
    layers furthest below it while they fit: as uniform as integer counts allow, with the budget met exactly."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        kept = [min(max(round(mid * s), lo[i]), s) for i, s in enumerate(model.sizes)]
        low, high = (mid, high) if model.cost(kept) <= target else (low, mid)
    kept = [min(max(round(low * s), lo[i]), s) for i, s in enumerate(model.sizes)]
    if model.cost(kept) > target * (1 + TOLERANCE):
        raise UserError(f"budget unreachable: {model.kind} stays above {target:.6g} with every layer at its minimum")
    return fill(model, target, kept, lambda i, k: -k / model.sizes[i])


def linear_cost(
    kind: str, names: list[str], sizes: list[int], per_unit: list[float], fixed: float, unit: str
) -> CostModel:
    """cost = fixed + sum(kept_l * per_unit_l): fine-grained FLOPs and parameters."""

    def cost(kept: Sequence[int]) -> float:
        return fixed + sum(k * w for k, w in zip(kept, per_unit, strict=True))

    return CostModel(kind, names, sizes, cost, unit)
