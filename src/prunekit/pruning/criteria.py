"""Unstructured criteria: each scores every prunable weight (higher = more worth keeping), nothing more.

A criterion is a function `(ctx: ScoreContext) -> dict[name, Tensor]` registered in CRITERIA. Criteria that need
data set `needs_data = True` on the function; the runner then gives them a fixed list of batches, so scores are
deterministic under the seed. Already-pruned weights may get any score: allocation never revives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.pruning.masks import Masks, apply_masks, prunable_params
from prunekit.registry import Registry

Scores = dict[str, Tensor]


@dataclass
class ScoreContext:
    model: nn.Module
    masks: Masks
    batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    generator: torch.Generator | None = None
    iteration: tuple[int, int] = (0, 1)  # (step, steps) when a method prunes iteratively (SynFlow)

    @property
    def params(self) -> dict[str, nn.Parameter]:
        return prunable_params(self.model, self.masks)


Criterion = Callable[[ScoreContext], Scores]
CRITERIA: Registry[Criterion] = Registry("criterion")


def needs_data(criterion: Criterion) -> bool:
    return getattr(criterion, "needs_data", False)


def _data_dependent(fn: Criterion) -> Criterion:
    fn.needs_data = True  # type: ignore[attr-defined]
    return fn


@CRITERIA.register("magnitude")
def magnitude(ctx: ScoreContext) -> Scores:
    return {n: p.detach().abs() for n, p in ctx.params.items()}


@CRITERIA.register("random")
def random(ctx: ScoreContext) -> Scores:
    return {n: torch.rand(p.shape, generator=ctx.generator).to(p.device) for n, p in ctx.params.items()}


def _accumulate_grads(ctx: ScoreContext) -> dict[str, Tensor]:
    """Gradients of the mean cross-entropy over ctx.batches, for the masked network."""
    model, params = ctx.model, ctx.params
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    apply_masks(model, ctx.masks)
    for x, y in ctx.batches:
        (F.cross_entropy(model(x), y) / len(ctx.batches)).backward()
    grads = {n: p.grad.detach().clone() for n, p in params.items()}
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return grads


@CRITERIA.register("snip")
@_data_dependent
def snip(ctx: ScoreContext) -> Scores:
    """Lee et al. 2019: connection sensitivity |g * w| on a few batches."""
    grads = _accumulate_grads(ctx)
    return {n: (grads[n] * p.detach()).abs() for n, p in ctx.params.items()}


@CRITERIA.register("taylor")
@_data_dependent
def taylor(ctx: ScoreContext) -> Scores:
    """First-order Taylor saliency |w * g|, with g accumulated batch by batch (Molchanov et al. 2019)."""
    model, params = ctx.model, ctx.params
    totals = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()
    apply_masks(model, ctx.masks)
    for x, y in ctx.batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for n, p in params.items():
            totals[n] += (p.grad * p.detach()).abs()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return totals
