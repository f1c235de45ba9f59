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
        _check_keywords(model, inputs)
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _check_keywords(model: nn.Module, inputs: Mapping) -> None:
    """A one-line error when `model.forward` cannot take the mapping's keys as keyword arguments."""
    import inspect

    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # no signature to check: let the call decide
        return
    try:
        signature.bind(**{str(k): None for k in inputs})
    except TypeError as exc:
        raise UserError(
            f"{type(model).__name__}.forward cannot take the inputs {sorted(map(str, inputs))[:5]} as keywords "
            f"({exc}): a dict of inputs is passed as keyword arguments (model(**inputs)); for a forward that takes "
            "the dict as one argument, pass it in a tuple ((inputs,), example_inputs=(inputs,)); for one that takes "
            "tensors, pass tensors"
        ) from None


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
    """The objective of a loss and an inputs function; a loss in PyTorch's usual form `loss(outputs, targets)`
    (`F.cross_entropy`, `nn.MSELoss()`) is accepted beside prunekit's `loss(model, batch)`."""
    inputs = inputs_fn or default_inputs
    if loss_fn is not None and takes_outputs(loss_fn):
        return Objective(loss=OutputsLoss(loss_fn, inputs), inputs=inputs)
    return Objective(loss=loss_fn or classification_loss, inputs=inputs)


OUTPUT_NAMES = {"input", "inputs", "logits", "output", "outputs", "pred", "preds", "prediction", "predictions"}
OUTPUT_NAMES |= {"y_pred", "y_hat", "yhat", "scores", "x", "out"}
TARGET_KEYS = ("labels", "label", "targets", "target", "y")  # where a mapping batch keeps its targets


def takes_outputs(fn: Any) -> bool:
    """Whether `fn` is a loss of (outputs, targets), as torch's losses are, rather than of (model, batch): an
    nn.Module (nn.CrossEntropyLoss()), a function of torch, or one whose first argument is named like outputs."""
    import inspect

    if isinstance(fn, nn.Module):
        return True
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional or positional[0].name.lower() in ("model", "net", "module", "network"):
        return False
    return positional[0].name.lower() in OUTPUT_NAMES or str(getattr(fn, "__module__", "")).startswith("torch")


@dataclass(frozen=True)
class OutputsLoss:
    """A loss(outputs, targets) as a loss(model, batch): outputs of the model on the batch's inputs (a Hugging
    Face output's `.logits`), targets from `(x, y)` or a mapping's labels; per-token logits [..., V] with class
    indices [...] are flattened, as cross-entropy needs."""

    fn: Callable[[Any, Any], Tensor]
    inputs: InputsFn

    def __call__(self, model: nn.Module, batch: Batch) -> Tensor:
        if isinstance(batch, Mapping):
            key = next((k for k in TARGET_KEYS if k in batch), None)
            if key is None:
                raise UserError(
                    f"a loss(outputs, targets) needs targets: mapping batches hold none of {', '.join(TARGET_KEYS)}"
                )
            y = batch[key]
        elif isinstance(batch, Sequence) and not isinstance(batch, str | bytes) and len(batch) >= 2:
            y = batch[1]
        else:
            raise UserError(f"a loss(outputs, targets) needs (inputs, targets) batches, got {type(batch).__name__}")
        out = call_model(model, self.inputs(batch))
        out = getattr(out, "logits", out)
        per_position = isinstance(out, Tensor) and isinstance(y, Tensor) and out.dim() > 2
        if per_position and y.shape == out.shape[:-1] and not y.is_floating_point():  # class indices per position
            return self.fn(out.reshape(-1, out.shape[-1]), y.reshape(-1))  # [N*T, V] against [N*T]
        return self.fn(out, y)


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
