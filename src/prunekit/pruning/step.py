"""One pruning step: score with a criterion, then let an allocation turn the scores into masks.

The runner (every unstructured method) and `prunekit.prune` (any nn.Module) both prune through this function.

Post-training criteria (`wanda`, `sparsegpt`; see `prunekit.pruning.posttrain`) go through the sequential calibration
driver instead, and always compare weights within a layer, as their papers do: every covered layer is pruned to the
target (scope `global` means this too), or to its share under `scope: layerwise` with an allocation such as erk.

Their `calibration` order inside a block is "block" (every layer from one pass of the block's dense inputs, as the
papers) or "sequential" (layer group after layer group); `allocation="owl"` gives each block its own sparsity from
its outlier ratio (`owl`: (M, lambda), see `prunekit.pruning.posttrain.owl`).

`pattern` "N:M" (e.g. "2:4") replaces the allocation for every criterion: in each group of M consecutive inputs of
each output row the N best weights stay, so the sparsity is 1 - N/M and must be given as such.
"""

from __future__ import annotations

import dataclasses
import difflib

from prunekit.errors import UserError
from prunekit.pruning import allocation as alloc
from prunekit.pruning.criteria import CRITERIA, ScoreContext, needs_data
from prunekit.pruning.masks import Masks, apply_masks, sparsity, transposed_names
from prunekit.pruning.patterns import check_divisible, check_sparsity, parse_pattern, select_nm
from prunekit.pruning.posttrain import POSTTRAIN, Target, prune_sequential
from prunekit.pruning.posttrain.owl import OWL_DEFAULTS, owl_targets


def check_criterion(name: str) -> None:
    """An unknown criterion fails with the close matches among scoring and post-training criteria alike."""
    if name in CRITERIA or name in POSTTRAIN:
        return
    known = sorted(CRITERIA.names() + POSTTRAIN.names())
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(f"unknown criterion {name!r}: {hint}known: {', '.join(known)}")


def wants_data(criterion: str, scope: str, allocation: str) -> bool:
    """Whether this criterion/allocation pair scores from batches (SNIP-ratio allocation does, by SNIP)."""
    check_criterion(criterion)
    if allocation == "owl" and criterion not in POSTTRAIN:
        raise UserError(f"allocation owl sets block sparsities for wanda and sparsegpt, not criterion {criterion}")
    scored = criterion in POSTTRAIN or needs_data(CRITERIA.get(criterion))
    return scored or (scope == "layerwise" and allocation == "snip")


def prune_step(
    ctx: ScoreContext,
    criterion: str,
    sparsity: float,
    *,
    scope: str = "global",
    allocation: str = "uniform",
    fixed: dict[str, float] | None = None,
    min_density: float = 0.0,
    pattern: str = "unstructured",
    calibration: str = "block",
    owl: tuple[float, float] = OWL_DEFAULTS,
) -> Masks:
    """New masks at `sparsity` from ctx.masks (which only shrink), scored on ctx.model.

    Post-training criteria also write ctx.model: the pruned weights are zeroed, and SparseGPT updates the others.
    """
    nm = parse_pattern(pattern)
    if nm is not None:
        check_sparsity(sparsity, nm)
        check_divisible(ctx.masks, nm[1], transposed_names(ctx.model))
    if wants_data(criterion, scope, allocation) and not ctx.batches:
        raise UserError(f"criterion {criterion} with allocation {allocation} needs data: pass batches")
    ratio = CRITERIA.get("snip")(ctx) if scope == "layerwise" and allocation == "snip" else None
    if criterion in POSTTRAIN:
        if nm is not None:
            if allocation == "owl":
                raise UserError(f"allocation owl sets a sparsity per block: it does not apply to pattern {pattern}")
            targets = {name: Target(nm=nm) for name in ctx.masks}
        elif allocation == "owl":
            targets, _ = owl_targets(ctx.model, ctx.masks, ctx.batches, ctx.objective, sparsity, *owl)
        else:
            split = allocation if scope == "layerwise" else "uniform"
            counts = alloc.layer_counts(
                ctx.masks, sparsity, allocation=split, fixed=fixed, min_density=min_density, ratio_scores=ratio
            )
            targets = {name: Target(keep=count) for name, count in counts.items()}
        method = POSTTRAIN.get(criterion)()
        masks = prune_sequential(ctx.model, ctx.masks, ctx.batches, method, targets, ctx.objective, calibration)
        alloc.warn_collapse(masks)
        return masks
    scores = CRITERIA.get(criterion)(ctx)
    if nm is not None:
        return select_nm(scores, ctx.masks, *nm, transposed_names(ctx.model))
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
    check_criterion(criterion)
    return 1 if criterion in POSTTRAIN else int(getattr(CRITERIA.get(criterion), "default_iterations", 1))


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
    pattern: str = "unstructured",
    calibration: str = "block",
    owl: tuple[float, float] = OWL_DEFAULTS,
) -> Masks:
    """Masks at `target` in `iterations` steps (None: the criterion's default) on an exponential schedule: step k of
    n reaches 1 - (1 - s0) ((1 - target) / (1 - s0))^(k/n) from the current sparsity s0, applying the masks between
    steps so each step scores the network already pruned by the last. An N:M `pattern` is chosen in one step (its
    groups fix the sparsity at 1 - N/M), so the criterion's iterations do not apply."""
    steps = default_iterations(criterion) if iterations is None else int(iterations)
    if steps < 1:
        raise UserError(f"iterations must be >= 1, got {steps}")
    if pattern != "unstructured":
        if iterations is not None and steps > 1:
            raise UserError(f"pattern {pattern} is chosen in one step: set iterations to 1 (or leave it unset)")
        steps = 1
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
            pattern=pattern,
            calibration=calibration,
            owl=owl,
        )
        if steps > 1:
            apply_masks(ctx.model, masks)
    return masks


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
