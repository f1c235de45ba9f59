"""Perplexity, the language-model metric (lower is better): exp of the mean cross-entropy per predicted token.

The mean is over tokens, not batches: the summed cross-entropy of every target token divided by their number, so
batches of different sizes weigh by what they hold. Targets equal to -100 (the Hugging Face padding label) count
for nothing. The model's output may be logits [..., V] or an object with `.logits` (Hugging Face).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.batches import DEFAULT, Batch, Objective
from prunekit.errors import UserError

IGNORE = -100


def token_batches(x: Tensor, y: Tensor, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    """(x, y) pairs of at most `batch_size` sequences, in order."""
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def _logits(output: object) -> Tensor:
    logits = getattr(output, "logits", output)
    if not isinstance(logits, Tensor):
        raise UserError(f"perplexity needs logits: the model returned a {type(output).__name__}")
    return logits


@torch.no_grad()
def token_loss(model: nn.Module, batches: Iterable[Batch], objective: Objective = DEFAULT) -> tuple[float, int]:
    """(summed cross-entropy in nats, number of target tokens) over `(inputs, targets)` batches, in eval mode."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for batch in batches:
            logits, targets = _logits(objective.forward(model, batch)), batch[1]
            flat = logits.reshape(-1, logits.shape[-1]).float()
            total += float(F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE, reduction="sum"))
            count += int((targets != IGNORE).sum())
    finally:
        model.train(was_training)
    return total, count


def perplexity(model: nn.Module, batches: Iterable[Batch], objective: Objective = DEFAULT) -> float:
    """exp(mean token cross-entropy) of `model` on `(inputs, targets)` batches of held-out text."""
    total, count = token_loss(model, batches, objective)
    if count == 0:
        raise UserError("perplexity needs at least one target token")
    return math.exp(total / count)
