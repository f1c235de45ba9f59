"""Metrics a Task reports, computed over batches: accuracy, perplexity, mean loss, or the user's own function.

A named metric accumulates a (sum, count) pair per batch, so the result does not depend on how the data is
batched; a user's metric is any `metric(model, batches) -> float` and says whether higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective, default_inputs
from prunekit.common.errors import UserError
from prunekit.tasks.base import Metric

MetricFn = Callable[[nn.Module, Iterable[Batch]], float]
IGNORE = -100  # targets cross_entropy skips, so perplexity does not count them either
KNOWN = {"accuracy": Metric("accuracy", True), "perplexity": Metric("perplexity", False), "loss": Metric("loss", False)}


def _targets(batch: Batch) -> Tensor:
    if isinstance(batch, list | tuple) and len(batch) >= 2 and isinstance(batch[1], Tensor):
        return batch[1]
    if isinstance(batch, dict) and isinstance(batch.get("labels"), Tensor):
        return batch["labels"]
    raise UserError("the accuracy and perplexity metrics need (inputs, targets) batches: pass metric= a function")


def _logits(out: Any) -> Tensor:
    logits = out if isinstance(out, Tensor) else getattr(out, "logits", None)
    if not isinstance(logits, Tensor):
        raise UserError(f"the model returns a {type(out).__name__}, not logits: pass metric= a function")
    return logits


def batch_sums(name: str, model: nn.Module, batch: Batch, objective: Objective) -> tuple[float, int]:
    """(sum, count) of metric `name` on one batch: correct predictions, summed token NLL, or summed loss."""
    if name == "loss":
        n = _count(batch)
        return float(objective.loss(model, batch)) * n, n
    out = _logits(objective.forward(model, batch))
    y = _targets(batch)
    if name == "accuracy":
        return float((out.argmax(dim=-1) == y).sum()), y.numel()
    nll = F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1), reduction="sum")
    return float(nll), int((y != IGNORE).sum())  # -100: Hugging Face's label for "no target here"


def _count(batch: Batch) -> int:
    inputs = default_inputs(batch)
    return int(inputs.shape[0]) if isinstance(inputs, Tensor) and inputs.dim() else 1


def finish(name: str, total: float, count: int) -> float:
    if count == 0:
        raise UserError("evaluation saw no examples: the split is empty")
    mean = total / count
    return math.exp(min(mean, 700.0)) if name == "perplexity" else mean


@torch.inference_mode()
def batch_totals(model: nn.Module, batches: Iterable[Batch], metric: str, objective: Objective) -> tuple[float, int]:
    """(sum, count) of a named metric over every batch, in eval mode (the model's mode restored afterwards); the
    totals of several shards add up, which is how ranks of a distributed run evaluate together."""
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        for batch in batches:
            s, n = batch_sums(metric, model, batch, objective)
            total, count = total + s, count + n
    finally:
        model.train(was_training)
    return total, count


def evaluate_batches(model: nn.Module, batches: Iterable[Batch], metric: str, objective: Objective) -> float:
    """A named metric over every batch, in eval mode (the model's mode restored afterwards)."""
    return finish(metric, *batch_totals(model, batches, metric, objective))


def perplexity(model: nn.Module, batches: Iterable[Batch], objective: Objective = DEFAULT) -> float:
    """exp(mean cross-entropy per target token) over `(inputs, targets)` batches: lower is better."""
    return evaluate_batches(model, batches, "perplexity", objective)


def resolve(metric: str | MetricFn, higher_is_better: bool | None = None) -> tuple[Metric, MetricFn | None]:
    """(Metric, the user's function or None for a named metric)."""
    if isinstance(metric, str):
        if metric not in KNOWN:
            raise UserError(f"unknown metric {metric!r}: known: {', '.join(KNOWN)}, or pass a function")
        return KNOWN[metric], None
    if not callable(metric):
        raise UserError(f"metric must be a name ({', '.join(KNOWN)}) or a function, got {type(metric).__name__}")
    name = getattr(metric, "__name__", "metric")
    return Metric(name, True if higher_is_better is None else higher_is_better), metric
