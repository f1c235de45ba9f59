"""Channel criteria: each scores every channel of every prunable group (higher = more worth keeping), nothing more.

A channel criterion is a function `(ctx: ChannelContext) -> {group name: Tensor[group.size]}` registered in
CHANNEL_CRITERIA. Filter criteria score each producing layer's output filters and average over the layers a
residual addition couples. Criteria that need data set `needs_data = True` (see prunekit.pruning.criteria);
ThiNet (in thinet.py) also carries a `reconstruct` step that rescales the kept weights after selection; PCAS (in
pcas.py) trains attention modules on the batches and scores each channel by its mean attention.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.pruning.structured.criterion import (  # noqa: F401  (re-exported: the names criteria are written with)
    CHANNEL_CRITERIA,
    ChannelContext,
    ChannelCriterion,
    Scores,
    data_dependent,
    to_root,
)


def _mean(scores: list[Tensor]) -> Tensor:
    return torch.stack(scores).mean(0)


def filter_scores(ctx: ChannelContext, per_filter: Callable[[Tensor], Tensor]) -> Scores:
    """`per_filter(weight.flatten(1))` for every producing layer of each group, averaged over coupled layers."""
    return {
        g.name: _mean([to_root(g, m, per_filter(m.module.weight.detach().flatten(1))) for m in g.role("out")])
        for g in ctx.groups
    }


@CHANNEL_CRITERIA.register("l1_filter")
def l1_filter(ctx: ChannelContext) -> Scores:
    """Li et al. 2017: the L1 norm of each filter."""
    return filter_scores(ctx, lambda w: w.abs().sum(1))


@CHANNEL_CRITERIA.register("l2_filter")
def l2_filter(ctx: ChannelContext) -> Scores:
    return filter_scores(ctx, lambda w: w.norm(dim=1))


@CHANNEL_CRITERIA.register("fpgm")
def fpgm(ctx: ChannelContext) -> Scores:
    """He et al. 2019: filters close to the layer's geometric median are replaceable by the others, so a filter
    scores its summed Euclidean distance to all filters of its layer."""
    return filter_scores(ctx, lambda w: torch.cdist(w.float()[None], w.float()[None])[0].sum(1))


@CHANNEL_CRITERIA.register("random")
def random(ctx: ChannelContext) -> Scores:
    return {g.name: torch.rand(g.size, generator=ctx.generator) for g in ctx.groups}


@CHANNEL_CRITERIA.register("bn_scale")
def bn_scale(ctx: ChannelContext) -> Scores:
    """Liu et al. 2017 (network slimming): |gamma| of the BatchNorm that follows the channels."""
    scores = {}
    for g in ctx.groups:
        norms = [
            m
            for m in g.role("norm")
            if isinstance(m.module, nn.modules.batchnorm._BatchNorm) and m.module.weight is not None
        ]
        if not norms:
            raise UserError(
                f"criterion bn_scale needs a BatchNorm with affine weights after {g.name!r}; "
                "add it to prune.ignore or use another criterion"
            )
        scores[g.name] = _mean([to_root(g, m, m.module.weight.abs()) for m in norms])
    return scores


@CHANNEL_CRITERIA.register("taylor")
@data_dependent
def taylor(ctx: ChannelContext) -> Scores:
    """Molchanov et al. 2019: the squared first-order change of the loss when a filter (weights and bias) is
    removed, (sum of w * dL/dw over the filter)^2, summed over the batches."""
    if not ctx.batches:
        raise UserError("criterion taylor needs batches of training data")
    model = ctx.model
    layers = {m.name: m.module for g in ctx.groups for m in g.role("out")}
    totals = {name: torch.zeros(layer.weight.shape[0]) for name, layer in layers.items()}
    was_training = model.training
    model.eval()
    try:
        for batch in ctx.batches:
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():  # also when called from no-grad code (the gradual pruning step hook)
                ctx.objective.loss(model, batch).backward()
            for name, layer in layers.items():
                change = (layer.weight * layer.weight.grad).flatten(1).sum(1)
                if layer.bias is not None and layer.bias.grad is not None:
                    change = change + layer.bias * layer.bias.grad
                totals[name] += change.detach().float().cpu() ** 2
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {g.name: _mean([to_root(g, m, totals[m.name]) for m in g.role("out")]) for g in ctx.groups}
