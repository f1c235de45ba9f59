"""Sensitivity scan (Li et al. 2017, fig. 2; Distiller): prune each layer alone at a range of ratios, evaluate
without retraining, and record the accuracy. Works on any nn.Module with an `evaluate(model) -> accuracy` callable.

Channel scans remove a group's lowest-ranked channels by masking the inputs of the layers that consume them
(`prunekit.pruning.structured.masking`: the same outputs as the thinner network, no weights touched); unstructured
scans zero a tensor's lowest-scored weights in place and restore them from a copy. After every point the model's
whole state (parameters and buffers) is compared with the saved copy, so a scan can never leave it changed: an
`evaluate` that changes the model (e.g. BatchNorm statistics updated in train mode) is an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective
from prunekit.common.errors import UserError
from prunekit.common.progress import Ticker

Evaluate = Callable[[nn.Module], float]
RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Sensitivity:
    """accuracy[layer][i] = accuracy with only `layer` pruned at ratios[i] (fraction removed)."""

    structure: str
    criterion: str
    ratios: list[float]
    dense_accuracy: float
    layers: list[str]
    sizes: list[int]
    accuracy: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def drop(self, layer: str) -> list[float]:
        """Accuracy lost at each ratio (dense minus pruned; negative when pruning helped)."""
        return [self.dense_accuracy - a for a in self.accuracy[layer]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "structure": self.structure,
            "criterion": self.criterion,
            "ratios": self.ratios,
            "dense_accuracy": self.dense_accuracy,
            "layers": [
                {"name": n, "size": s, "accuracy": self.accuracy[n]}
                for n, s in zip(self.layers, self.sizes, strict=True)
            ],
            "seconds": round(self.seconds, 3),
        }


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _check_unchanged(model: nn.Module, saved: dict[str, Tensor], where: str) -> None:
    for key, value in model.state_dict().items():
        if not torch.equal(value, saved[key]):
            raise UserError(
                f"sensitivity: {key} changed after {where}; `evaluate` must not change the model "
                "(run it in eval mode, under torch.no_grad)"
            )


def scan(
    model: nn.Module,
    evaluate: Evaluate,
    *,
    structure: str = "channel",
    ratios: Sequence[float] = RATIOS,
    example_input: Any = None,
    ignore: Sequence[str] | None = None,
    criterion: str | None = None,
    batches: list[Batch] | None = None,
    objective: Objective = DEFAULT,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> Sensitivity:
    """Accuracy of `model` with each prunable layer alone pruned at each ratio, without retraining.

    structure: "channel" (a layer is a channel group; ratio = fraction of its channels removed, lowest-ranked by
        `criterion`, default l1_filter) or "unstructured" (a layer is a weight tensor; ratio = its sparsity, lowest
        scores by `criterion`, default magnitude). ignore: layers never pruned (default: the output layer).
    example_input: one input batch for tracing channel groups (default zeros of `model.arch["input_shape"]`).
    batches + objective: data for data-driven criteria (taylor, thinet, snip, ...).
    log: where progress lines go (a line per layer, with the time left; default print, None = quiet).
    """
    if structure not in ("channel", "unstructured"):
        raise UserError(f"sensitivity structure must be channel or unstructured, got {structure!r}")
    grid = [float(r) for r in ratios]
    if not grid or any(not 0.0 < r < 1.0 for r in grid) or grid != sorted(set(grid)):
        raise UserError(f"sensitivity ratios must be increasing and in (0, 1), got {list(ratios)}")
    say = log or (lambda _: None)
    start = time.perf_counter()
    saved = _snapshot(model)
    gen = torch.Generator().manual_seed(seed)
    dense = float(evaluate(model))
    _check_unchanged(model, saved, "evaluating the dense model")
    if structure == "channel":
        crit = criterion or "l1_filter"
        names, sizes, apply = _channel_points(model, example_input, ignore, crit, batches, objective, gen)
    else:
        crit = criterion or "magnitude"
        names, sizes, apply = _tensor_points(model, example_input, ignore, crit, batches, objective, gen, saved)
    result = Sensitivity(structure, crit, grid, dense, names, sizes)
    say(f"sensitivity: {len(names)} layers x {len(grid)} ratios, dense {100 * dense:.1f}")
    ticker = Ticker(len(names), say)
    for i, name in enumerate(names):
        accuracy = []
        for r in grid:
            accuracy.append(float(apply(i, r, evaluate)))
            _check_unchanged(model, saved, f"pruning {name} at {r}")
        result.accuracy[name] = accuracy
        text = f"sensitivity: {name} ({i + 1}/{len(names)}): " + " ".join(f"{100 * a:.1f}" for a in accuracy)
        ticker.tick(i + 1, text, force=True)  # a line per layer, with the time left
    result.seconds = time.perf_counter() - start
    return result


def _example(model: nn.Module, example_input: Any) -> Any:
    from prunekit.pruning.structured.inputs import example_inputs

    return example_inputs(model, example_input)


def _channel_points(
    model: nn.Module,
    example_input: Any,
    ignore: Sequence[str] | None,
    criterion: str,
    batches: list[Batch] | None,
    objective: Objective,
    gen: torch.Generator,
) -> tuple[list[str], list[int], Callable[[int, float, Evaluate], float]]:
    from prunekit.pruning.structured.criteria import CHANNEL_CRITERIA, ChannelContext
    from prunekit.pruning.structured.groups import trace
    from prunekit.pruning.structured.masking import channels_removed, lowest_first

    groups = trace(model, tuple(ignore or ()), _example(model, example_input)).groups
    fn = CHANNEL_CRITERIA.get(criterion)
    order = lowest_first(fn(ChannelContext(model, groups, list(batches or []), gen, objective=objective)))

    def apply(i: int, ratio: float, evaluate: Evaluate) -> float:
        g = groups[i]
        gone = min(round(ratio * g.size), g.size - 1)
        with channels_removed(groups, {g.name: order[g.name][:gone]}):
            return evaluate(model)

    return [g.name for g in groups], [g.size for g in groups], apply


def _tensor_points(
    model: nn.Module,
    example_input: Any,
    ignore: Sequence[str] | None,
    criterion: str,
    batches: list[Batch] | None,
    objective: Objective,
    gen: torch.Generator,
    saved: dict[str, Tensor],
) -> tuple[list[str], list[int], Callable[[int, float, Evaluate], float]]:
    from prunekit.pruning.criteria import CRITERIA, ScoreContext
    from prunekit.pruning.masks import dense_masks, prunable_names

    names = prunable_names(model, None if ignore is None else list(ignore))
    ctx = ScoreContext(model, dense_masks(model, names), list(batches or []), gen, objective=objective)
    ctx.example_input = example_input
    scores = CRITERIA.get(criterion)(ctx)
    order = {n: torch.argsort(scores[n].detach().flatten().double().cpu(), stable=True) for n in names}
    params = dict(model.named_parameters())

    def apply(i: int, ratio: float, evaluate: Evaluate) -> float:
        name = names[i]
        w = params[name]
        try:
            with torch.no_grad():
                w.view(-1)[order[name][: round(ratio * w.numel())].to(w.device)] = 0
            return evaluate(model)
        finally:
            with torch.no_grad():
                w.copy_(saved[name])

    return names, [params[n].numel() for n in names], apply
