"""One pruning step: score with a criterion, then let an allocation turn the scores into masks.

The runner (every unstructured method) and `prunekit.prune` (any nn.Module) both prune through this function.
"""

from __future__ import annotations

from prunekit.errors import UserError
from prunekit.pruning import allocation as alloc
from prunekit.pruning.criteria import CRITERIA, ScoreContext, needs_data
from prunekit.pruning.masks import Masks


def wants_data(criterion: str, scope: str, allocation: str) -> bool:
    """Whether this criterion/allocation pair scores from batches (SNIP-ratio allocation does, by SNIP)."""
    return needs_data(CRITERIA.get(criterion)) or (scope == "layerwise" and allocation == "snip")


def prune_step(
    ctx: ScoreContext,
    criterion: str,
    sparsity: float,
    *,
    scope: str = "global",
    allocation: str = "uniform",
    fixed: dict[str, float] | None = None,
    min_density: float = 0.0,
) -> Masks:
    """New masks at `sparsity` from ctx.masks (which only shrink), scored on ctx.model."""
    if wants_data(criterion, scope, allocation) and not ctx.batches:
        raise UserError(f"criterion {criterion} with allocation {allocation} needs data: pass batches")
    scores = CRITERIA.get(criterion)(ctx)
    ratio = CRITERIA.get("snip")(ctx) if scope == "layerwise" and allocation == "snip" else None
    return alloc.prune(
        scores,
        ctx.masks,
        sparsity,
        scope=scope,
        allocation=allocation,
        fixed=fixed,
        min_density=min_density,
        ratio_scores=ratio,
    )


def fixed_by_ratios(
    ratios: dict[str, float], masks: Masks, sparsity: float, fixed: dict[str, float] | None = None
) -> tuple[float, dict[str, float]]:
    """(total sparsity, fixed densities) for per-layer ratios (tensor or module name -> fraction removed).

    Named tensors keep exactly 1 - ratio of their weights; the others share what `sparsity` leaves. When every
    prunable tensor is named, the total follows from the ratios and `sparsity` is not used.
    """
    fixed = dict(fixed or {})
    for key, ratio in ratios.items():
        name = key if key in masks else f"{key}.weight"
        if name not in masks:
            raise UserError(f"per-layer ratio for {key!r} names no prunable tensor; prunable: {list(masks)}")
        fixed[name] = 1.0 - float(ratio)
    if fixed and set(fixed) >= set(masks):
        total = sum(m.numel() for m in masks.values())
        kept = sum(round(fixed[n] * m.numel()) for n, m in masks.items())
        sparsity = 1.0 - kept / total
    return sparsity, fixed
