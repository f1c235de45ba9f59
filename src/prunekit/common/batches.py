"""Batches of any structure, and the objective that turns one into model inputs and a loss.

The zoo's batches are `(x, y)` pairs and its loss is cross-entropy; a user's batches may be tensors, tuples, dicts
or anything else. Everything that runs a model on data (data-driven criteria, calibration, training, evaluation)
goes through an `Objective`, so the structure of a batch is the user's business:

    objective = Objective(loss=lambda model, batch: F.mse_loss(model(**batch["inputs"]), batch["target"]),
                          inputs=lambda batch: batch["inputs"])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.errors import UserError

Batch = Any
LossFn = Callable[[nn.Module, Batch], Tensor]
InputsFn = Callable[[Batch], Any]


def call_model(model: nn.Module, inputs: Any) -> Any:
    """model(**inputs) for a mapping, model(*inputs) for a tuple, model(inputs) otherwise."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def default_inputs(batch: Batch) -> Any:
    """What the model is called on: `x` of an `(x, y, ...)` sequence, a mapping or tensor as it is."""
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes) and len(batch) >= 2:
        return batch[0]
    return batch


def classification_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Cross-entropy of model(x) against y for `(x, y)` batches; per-token logits [..., V] against labels [...].

    A mapping batch whose model output carries a `.loss` (Hugging Face style) uses that loss.
    """
    if isinstance(batch, Mapping):
        out = model(**batch)
        loss = getattr(out, "loss", None) if not isinstance(out, Mapping) else out.get("loss")
        if loss is None:
            raise UserError("batches are mappings and the model returns no loss: pass a loss function (loss_fn)")
        return loss
    if not (isinstance(batch, Sequence) and len(batch) >= 2):
        raise UserError(f"the default loss needs (inputs, targets) batches, got {type(batch).__name__}: pass loss_fn")
    x, y = batch[0], batch[1]
    out = call_model(model, x) if isinstance(x, Mapping | tuple) else model(x)
    if not isinstance(out, Tensor):
        raise UserError(f"the model returns a {type(out).__name__}, not logits: pass a loss function (loss_fn)")
    if out.dim() > 2:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.cross_entropy(out, y)


@dataclass(frozen=True)
class Objective:
    """How a batch is fed to a model (`inputs`) and scored (`loss`, a scalar to minimise)."""

    loss: LossFn = classification_loss
    inputs: InputsFn = default_inputs

    def forward(self, model: nn.Module, batch: Batch) -> Any:
        return call_model(model, self.inputs(batch))


DEFAULT = Objective()


def make_objective(loss_fn: LossFn | None = None, inputs_fn: InputsFn | None = None) -> Objective:
    return Objective(loss=loss_fn or classification_loss, inputs=inputs_fn or default_inputs)


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """The batch with every tensor in it moved to `device` (tuples, lists and mappings followed)."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(to_device(v, device) for v in batch)
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    return batch


def batch_size(batch: Batch) -> int:
    """Examples in a batch: the first dimension of its first tensor (1 when it holds none)."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, Mapping):
        values = list(batch.values())
    elif isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        values = list(batch)
    else:
        return 1
    for value in values:
        n = batch_size(value) if isinstance(value, Tensor | Mapping | Sequence) else None
        if n is not None and not isinstance(value, str | bytes):
            return n
    return 1
