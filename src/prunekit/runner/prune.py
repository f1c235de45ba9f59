"""The pruning decision of a round: the masks at a target sparsity (unstructured), or the thinned layers (channel).

Criterion, scope, allocation, per-layer ratios (prune.layer_ratio, or AMC's searched ones) come from the config and
the round's plan. Every draw is seeded by (seed, round), so a resumed run decides exactly what an uninterrupted one
does. The Run decides on rank 0 and shares the result (`Run._prune`); this module only decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from prunekit.config import Config
from prunekit.pruning.criteria import ScoreContext
from prunekit.pruning.flops import is_shape
from prunekit.pruning.masks import Masks, apply_masks
from prunekit.pruning.methods import RoundPlan
from prunekit.pruning.step import fixed_by_ratios, prune_to, wants_data
from prunekit.runner.checks import seed_for
from prunekit.tasks import Task

if TYPE_CHECKING:
    from prunekit.runner.state import RunState


def score_batches(cfg: Config, task: Task, gen: torch.Generator) -> list[Any]:
    """The batches criteria score on: prune.score_batches of them, at the training batch size, drawn by `gen`."""
    return task.score_batches(cfg.prune.score_batches, cfg.train.batch_size, gen)


def decide(run: RunState, plan: RoundPlan, masks: Masks, target: float | None) -> Masks:
    """Prune `run.model` to `target` (default: the plan's sparsity); returns the new masks ({} for channel runs,
    whose model is thinned in place). Takes the Run explicitly: it reads the run's config, model, task, example
    input and unpruned base network, and AMC's search (plan.allocate amc) reads and logs through the run whole."""
    p = run.cfg.prune
    target = plan.sparsity if target is None else target
    gen = torch.Generator().manual_seed(seed_for(run.cfg.seed, plan.index, 10**6))
    ratios = dict(p.layer_ratio)  # per-layer ratios (layer -> fraction removed), e.g. from a sensitivity scan
    if plan.allocate == "amc":  # learned per-layer ratios: searched once on the trained network, logged
        from prunekit.runner.amc import search_ratios

        ratios = search_ratios(run, plan)
    if run.compressing:
        from prunekit.runner.compress import compress_round

        batches = (
            score_batches(run.cfg, run.task, gen) if p.compress.importance == "activation" or p.compress.depth else []
        )
        run.compressed = compress_round(run, plan, target, batches)
        return {}
    if run.channel:
        _prune_channels(run, plan, target, ratios, gen)
        return {}
    batches = score_batches(run.cfg, run.task, gen) if wants_data(p.criterion, p.scope, p.allocation) else []
    target, fixed = fixed_by_ratios(ratios, masks, target, plan.fixed)
    ctx = ScoreContext(run.model, masks, batches, gen, objective=run.task.objective, example_input=run.example)
    return prune_to(
        ctx,
        p.criterion,
        target,
        iterations=plan.iterations if plan.iterations is not None else p.iterations,
        scope=p.scope,
        allocation=p.allocation,
        fixed=fixed,
        min_density=p.min_density,
        pattern=p.pattern,
        calibration=p.calibration,
        owl=(p.owl_m, p.owl_lambda),
    )


def _prune_channels(
    run: RunState, plan: RoundPlan, target: float, ratios: dict[str, float], gen: torch.Generator
) -> None:
    """Thin the run's model to `target` by its channel criterion (widths measured against `run.base`); the groups
    that stayed whole are logged with the reason."""
    from prunekit.pruning.structured import needs_batches, original_widths, prune_channels

    p = run.cfg.prune
    report = prune_channels(
        run.model,
        target,
        criterion=p.criterion,
        scope=p.scope,
        ignore=p.ignore or (),
        min_channels=p.min_channels,
        round_to=1 if plan.allocate == "amc" else p.round_to,  # AMC's budget holds for exact widths
        batches=score_batches(run.cfg, run.task, gen) if needs_batches(p.criterion) else [],
        objective=run.task.objective,
        example_input=None if is_shape(run.example) else run.example,
        generator=gen,
        original=original_widths(run.model, run.base),
        ratios=ratios,
        only=plan.layers,
    )
    if report.whole:  # the sparsity counts only the groups that could lose channels: say which could not
        kept = "; ".join(f"{name} ({why})" for name, why in report.whole.items())
        run.log(f"round {plan.index}: channel groups kept whole: {kept}")


def pruned_score(model: nn.Module, task: Task, masks: Masks, batch_size: int) -> float | None:
    """Test metric of the network just pruned, before any rewinding or retraining (the no-retraining point)."""
    apply_masks(model, masks)
    value = task.evaluate(model, "test", batch_size)
    return None if value is None else round(value, 6)
