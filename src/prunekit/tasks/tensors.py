"""The built-in Task: a zoo model trained on a dataset held in memory as tensors (MNIST, CIFAR, synthetic, text).

Batches are slices of the split tensors (no DataLoader), which is many times faster than a per-sample pipeline for
data that fits in memory; it stays the default path for the registered datasets.

Under torchrun every rank holds the whole dataset; each trains on its rows of every global batch (train/ddp_loop.py)
and evaluates a contiguous shard of the split, the shards' sums all-reduced: accuracy is a sum of integer counts, so
it is the one-process number exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective
from prunekit.data import Dataset
from prunekit.distributed import DDPModel, World, all_reduce_sum, current
from prunekit.tasks.base import LrAt, Metric
from prunekit.tasks.metrics import KNOWN, batch_totals, evaluate_batches, finish
from prunekit.train.ddp_loop import train_epoch_ddp
from prunekit.train.loop import evaluate as accuracy
from prunekit.train.loop import train_epoch


class TensorTask:
    """Image classification (or next-token prediction) on in-memory tensors, with a zoo or user model."""

    def __init__(
        self,
        data: Dataset,
        model_name: str,
        objective: Objective = DEFAULT,
        dataset_name: str | None = None,
        factory: Callable[[], nn.Module] | None = None,
    ) -> None:
        self.data = data
        self.dataset_name = dataset_name or data.name
        self.model_name = model_name
        self.objective = objective
        self.metric: Metric = KNOWN[getattr(data, "metric", "accuracy")]
        self.factory = factory  # a user model's factory; None = the zoo model `model_name`
        self._ddp = DDPModel()

    def build_model(self) -> nn.Module:
        if self.factory is not None:
            return self.factory()
        from prunekit.models import create_model

        return create_model(self.model_name, self.data.num_classes, self.data.input_shape)

    def to(self, device: torch.device) -> None:
        for split in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
            setattr(self.data, split, getattr(self.data, split).to(device))

    def example_input(self) -> Any:
        return self.data.train_x[:1]

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.data.train_x) // batch_size)

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
        world = current()
        if world.distributed:
            loss, _ = train_epoch_ddp(
                model,
                optimizer,
                self.data.train_x,
                self.data.train_y,
                batch_size=batch_size,
                lr_at=lr_at,
                epoch=epoch,
                generator=generator,
                world=world,
                wrapper=self._ddp,
                augment=self.data.augment,
                desc=desc,
                objective=self.objective,
            )
            return loss
        loss, _ = train_epoch(
            model,
            optimizer,
            self.data.train_x,
            self.data.train_y,
            batch_size=batch_size,
            lr_at=lr_at,
            epoch=epoch,
            generator=generator,
            augment=self.data.augment,
            desc=desc,
            objective=self.objective,
        )
        return loss

    def has_split(self, split: str) -> bool:
        return len(getattr(self.data, f"{split}_x")) > 0

    def split_size(self, split: str) -> int:
        """Examples in a split (optional in the Task protocol: loaders may not know)."""
        return len(getattr(self.data, f"{split}_x"))

    def evaluate(self, model: nn.Module, split: str, batch_size: int, limit: int | None = None) -> float | None:
        x, y = getattr(self.data, f"{split}_x"), getattr(self.data, f"{split}_y")
        if limit is not None:
            x, y = x[:limit], y[:limit]
        if not len(x):
            return None
        world = current()
        if world.distributed:
            return self._evaluate_shard(model, x, y, batch_size, world)
        if self.metric.name == "accuracy":
            return accuracy(model, x, y, batch_size)
        batches = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size))
        return evaluate_batches(model, batches, self.metric.name, self.objective)

    def _evaluate_shard(self, model: nn.Module, x: Tensor, y: Tensor, batch_size: int, world: World) -> float:
        lo, hi = len(x) * world.rank // world.size, len(x) * (world.rank + 1) // world.size
        x, y = x[lo:hi], y[lo:hi]
        if self.metric.name == "accuracy":
            correct = round(accuracy(model, x, y, batch_size) * len(x)) if len(x) else 0
            total, count = all_reduce_sum([correct, len(x)], world)
            return total / count
        batches = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size))
        total, count = all_reduce_sum(list(batch_totals(model, batches, self.metric.name, self.objective)), world)
        return finish(self.metric.name, total, int(count))

    def score_batches(self, count: int, batch_size: int, generator: torch.Generator) -> list[Batch]:
        x, y = self.data.train_x, self.data.train_y
        idx = torch.randperm(len(x), generator=generator)[: batch_size * count].to(x.device)
        return [(x[idx[i : i + batch_size]], y[idx[i : i + batch_size]]) for i in range(0, len(idx), batch_size)]
