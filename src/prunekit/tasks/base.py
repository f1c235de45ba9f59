"""What a Task is: how a network is built, trained for an epoch and evaluated, with which data and metric.

The runner sequences rounds and never touches data; a Task never writes files and never imports the runner.
Pruning while training reaches a Task only through the optimizer's step hooks the runner attaches.
Distributed training (DDP under torchrun) lives inside a Task's epoch and its data sharding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from prunekit.common.batches import Batch, Objective

LrAt = Callable[[float], float]


@dataclass(frozen=True)
class Metric:
    """The number a run reports per round: accuracy (higher is better) by default, perplexity or a loss otherwise."""

    name: str = "accuracy"
    higher_is_better: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better}

    def format(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.2%}" if self.name == "accuracy" else f"{value:.4g}"


ACCURACY = Metric()


class Task(Protocol):
    """The contract between the runner and whatever trains a network (see the module docstring)."""

    dataset_name: str  # recorded in summary.json
    model_name: str
    metric: Metric
    objective: Objective

    def build_model(self) -> nn.Module:
        """A fresh network at its initial weights, drawn from torch's global RNG (the runner seeds it)."""
        ...

    def to(self, device: torch.device) -> None:
        """Move whatever data lives in memory to `device`."""
        ...

    def example_input(self) -> Any:
        """Model inputs of one example (for FLOPs, tracing, data-free criteria), on the task's device."""
        ...

    def steps_per_epoch(self, batch_size: int) -> int: ...

    def train_epoch(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        batch_size: int,
        lr_at: LrAt,
        epoch: int,
        generator: torch.Generator,
        desc: str = "",
    ) -> float:
        """One epoch at schedule position `epoch` (the lr set from lr_at before every step); the mean loss.
        All randomness comes from `generator` (or is seeded from it), so an epoch replays identically."""
        ...

    def has_split(self, split: str) -> bool: ...

    def evaluate(self, model: nn.Module, split: str, batch_size: int, limit: int | None = None) -> float | None:
        """The metric on split "val" or "test" (only its first `limit` examples, when given: AMC's reward and
        sensitivity scans use a part of the validation split); None when the split is empty."""
        ...

    def score_batches(self, count: int, batch_size: int, generator: torch.Generator) -> list[Batch]:
        """`count` training batches chosen by `generator`, for data-driven criteria."""
        ...
