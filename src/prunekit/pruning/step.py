"""One pruning step: score with a criterion, then let an allocation turn the scores into masks.

The runner (every unstructured method) and `prunekit.prune` (any nn.Module) both prune through this function.
"""

from __future__ import annotations

import dataclasses

from prunekit.errors import UserError
from prunekit.pruning import allocation as alloc
from prunekit.pruning.criteria import CRITERIA, ScoreContext, needs_data
from prunekit.pruning.masks import Masks, apply_masks, sparsity


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


def default_iterations(criterion: str) -> int:
    """Pruning steps a criterion takes when none are asked for: SynFlow is iterative by design (Tanaka et al. 2020
    use 100 steps on an exponential schedule; one step empties layers at high sparsity), every other criterion 1."""
    return int(getattr(CRITERIA.get(criterion), "default_iterations", 1))


def prune_to(
    ctx: ScoreContext,
    criterion: str,
    target: float,
    *,
    iterations: int | None = None,
    scope: str = "global",
    allocation: str = "uniform",
    fixed: dict[str, float] | None = None,
    min_density: float = 0.0,
) -> Masks:
    """Masks at `target` in `iterations` steps (None: the criterion's default) on an exponential schedule: step k of
    n reaches 1 - (1 - s0) ((1 - target) / (1 - s0))^(k/n) from the current sparsity s0, applying the masks between
    steps so each step scores the network already pruned by the last."""
    steps = default_iterations(criterion) if iterations is None else int(iterations)
    if steps < 1:
        raise UserError(f"iterations must be >= 1, got {steps}")
    masks, start = ctx.masks, sparsity(ctx.masks)
    for step in range(1, steps + 1):
        goal = 1.0 - (1.0 - start) * ((1.0 - target) / (1.0 - start)) ** (step / steps) if steps > 1 else target
        step_ctx = dataclasses.replace(ctx, masks=masks, iteration=(step, steps))
        masks = prune_step(
            step_ctx,
            criterion,
            min(goal, target),
            scope=scope,
            allocation=allocation,
            fixed=fixed,
            min_density=min_density,
        )
        if steps > 1:
            apply_masks(ctx.model, masks)
    return masks
