"""What AMC searches over, for any nn.Module: the layers an episode walks, their static state features, the cost
models of a policy, and the accuracy of a policy without fine-tuning.

Channel mode: one layer per prunable channel group (coupled channels, e.g. a residual stage, are one decision);
a policy keeps `kept[g]` channels of group g, the lowest-ranked by the channel criterion dropped (rankings are
computed once), evaluated by masking the consumers' inputs (no surgery); given `refit` batches, each consumer that
loses inputs is first refit by least squares on sampled feature maps (reconstruct.py, AMC's reward path) and
restored after the evaluation. Fine-grained mode: one
layer per prunable weight tensor; a policy keeps `kept[t]` weights of tensor t, the lowest-scored by the criterion
zeroed in place and restored from a saved copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective
from prunekit.pruning.budget import CostModel
from prunekit.pruning.structured.groups import LAYERS

Evaluate = Callable[[nn.Module], float]
STATIC = ("index", "n", "c", "h", "w", "stride", "k", "flops")


@dataclass
class Problem:
    structure: str  # channel | unstructured
    names: list[str]
    sizes: list[int]
    features: Tensor  # [layers, len(STATIC)], raw (normalised by the environment)
    flops: CostModel  # FLOPs of a policy (state embedding; the accuracy-guaranteed reward)
    accuracy: Callable[[Sequence[int]], float]  # accuracy of a policy, without fine-tuning
    layer_flops: list[float] = field(default_factory=list)  # dense FLOPs of each layer's producing modules
    close: Callable[[], None] = lambda: None  # restore anything the evaluation touched
    refit: dict[str, Any] | None = None  # the least-squares refit's layers (reconstruct.py), None when off

    def ratios(self, kept: Sequence[int]) -> dict[str, float]:
        """Fraction of each layer's units removed (the `prune.layer_ratio` form)."""
        return {n: (s - k) / s for n, s, k in zip(self.names, self.sizes, kept, strict=True)}


def input_shapes(model: nn.Module, example: Any) -> dict[nn.Module, tuple[int, ...]]:
    """Shape of the first input of every Conv/Linear layer in one forward pass of `example`."""
    from prunekit.common.batches import call_model

    shapes: dict[nn.Module, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        shapes.setdefault(module, tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, LAYERS)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            call_model(model, example)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return shapes


def layer_features(index: int, layer: nn.Module, shape: tuple[int, ...], units: int, flops: float) -> list[float]:
    """AMC's static state of one layer: index, n (inputs), c (units), h, w, stride, k, FLOPs."""
    spatial = list(shape[2:]) + [1, 1]
    if isinstance(layer, nn.Linear):
        return [index, layer.in_features, units, 1, 1, 0, 1, flops]
    return [index, layer.in_channels, units, spatial[0], spatial[1], layer.stride[0], layer.kernel_size[0], flops]


def channel_problem(
    model: nn.Module,
    evaluate: Evaluate,
    example: Tensor,
    *,
    ignore: Sequence[str] = (),
    criterion: str = "l1_filter",
    batches: list[Batch] | None = None,
    objective: Objective = DEFAULT,
    generator: torch.Generator | None = None,
    refit: list[Batch] | None = None,
) -> Problem:
    from prunekit.pruning.amc.reconstruct import Reconstructor
    from prunekit.pruning.structured.costs import channel_costs
    from prunekit.pruning.structured.criteria import CHANNEL_CRITERIA, ChannelContext
    from prunekit.pruning.structured.groups import trace
    from prunekit.pruning.structured.masking import channels_removed, dropped, input_masks, lowest_first

    groups = trace(model, ignore, example).groups
    ctx = ChannelContext(model, groups, list(batches or []), generator, objective=objective)
    order = lowest_first(CHANNEL_CRITERIA.get(criterion)(ctx))
    flops = channel_costs(model, groups, example, "flops")
    shapes, named = input_shapes(model, example), dict(model.named_modules())
    per_module = _per_module_flops(model, example)
    rows, layer_flops = [], []
    for i, g in enumerate(groups):
        own = sum(per_module.get(m.name, 0) for m in g.role("out"))
        layer = named[g.name]
        rows.append(layer_features(i, layer, shapes.get(layer, (1, 1)), g.size, own))
        layer_flops.append(float(own))

    recon = None
    if refit:
        consumers = {m.name: m.module for g in groups for m in g.role("in")}
        recon = Reconstructor(model, consumers, refit, generator=generator, objective=objective)

    def accuracy(kept: Sequence[int]) -> float:
        drop = dropped(order, groups, kept)
        if recon is not None:
            recon.apply(input_masks(groups, drop))
        try:
            with channels_removed(groups, drop):
                return float(evaluate(model))
        finally:
            if recon is not None:
                recon.restore()

    names, sizes = [g.name for g in groups], [g.size for g in groups]
    rows_t = torch.tensor(rows, dtype=torch.float64)
    problem = Problem("channel", names, sizes, rows_t, flops, accuracy, layer_flops)
    problem.refit = None if recon is None else recon.summary()
    return problem


def tensor_problem(
    model: nn.Module,
    evaluate: Evaluate,
    example: Tensor,
    names: list[str],
    *,
    criterion: str = "magnitude",
    batches: list[Batch] | None = None,
    objective: Objective = DEFAULT,
    generator: torch.Generator | None = None,
) -> Problem:
    from prunekit.pruning.criteria import CRITERIA, ScoreContext
    from prunekit.pruning.masks import dense_masks
    from prunekit.pruning.structured.costs import tensor_costs

    params = dict(model.named_parameters())
    ctx = ScoreContext(model, dense_masks(model, names), list(batches or []), generator, objective=objective)
    ctx.example_input = example
    scores = CRITERIA.get(criterion)(ctx)
    order = {n: torch.argsort(scores[n].detach().flatten().double().cpu(), stable=True) for n in names}
    saved = {n: params[n].detach().clone() for n in names}
    flops = tensor_costs(model, names, example, "flops")
    shapes, per_module = input_shapes(model, example), _per_module_flops(model, example)
    rows, layer_flops = [], []
    for i, n in enumerate(names):
        layer = model.get_submodule(n.rsplit(".", 1)[0])
        own = per_module.get(n.rsplit(".", 1)[0], 0)
        rows.append(layer_features(i, layer, shapes.get(layer, (1, 1)), int(layer.weight.shape[0]), own))
        layer_flops.append(float(own))

    @torch.no_grad()
    def accuracy(kept: Sequence[int]) -> float:
        for n, k in zip(names, kept, strict=True):
            w = params[n]
            w.copy_(saved[n])
            w.view(-1)[order[n][: w.numel() - k].to(w.device)] = 0
        return float(evaluate(model))

    @torch.no_grad()
    def close() -> None:
        for n in names:
            params[n].copy_(saved[n])

    sizes = [params[n].numel() for n in names]
    rows_t = torch.tensor(rows, dtype=torch.float64)
    return Problem("unstructured", list(names), sizes, rows_t, flops, accuracy, layer_flops, close)


def _per_module_flops(model: nn.Module, example: Any) -> dict[str, int]:
    from prunekit.pruning.flops import example_flops

    return example_flops(model, example)[1]
