"""A Task over the user's own model factory and data: DataLoaders or any re-iterable of batches, any loss, any metric.

Batches may be tensors, tuples or dicts: the Objective says how one becomes model inputs and a loss. Each epoch
seeds torch's global RNG from the runner's per-epoch generator before iterating, so a shuffling DataLoader (its
sampler and worker seeds draw from that RNG), dropout and augmentation replay identically after a resume.

Under torchrun each rank trains on its share of the data (tasks/sharding.py) through DistributedDataParallel, with
its own seed for the global RNG (so ranks draw different augmentations). Named metrics are evaluated on every N-th
batch per rank and the sums all-reduced (accuracy: exactly the one-process number); a metric function of the user's
runs on rank 0 over every batch and its value is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import Batch, Objective, to_device
from prunekit.common.errors import UserError
from prunekit.common.progress import StepBar
from prunekit.distributed import DDPModel, all_reduce_sum, average_outside_grads, current, rank_seed, share
from prunekit.tasks.base import LrAt, Metric
from prunekit.tasks.metrics import MetricFn, batch_totals, evaluate_batches, finish, resolve
from prunekit.tasks.sharding import RankBatches
from prunekit.train.optim import set_lr


def _first_tensor(batch: Any) -> Tensor | None:
    """The first tensor in a batch of model inputs (a tensor, or one inside a dict, tuple or list)."""
    if isinstance(batch, Tensor):
        return batch
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, tuple | list) else ()
    return next((t for t in map(_first_tensor, values) if t is not None), None)


def _first_of(batch: Any) -> Any:
    """One example of a batch of model inputs (the first row of every tensor in it)."""
    if isinstance(batch, Tensor):
        return batch[:1] if batch.dim() else batch
    if isinstance(batch, dict):
        return {k: _first_of(v) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(_first_of(v) for v in batch)
    return batch


class LoaderTask:
    """Train and evaluate a user's model on iterables of batches (see the module docstring)."""

    def __init__(
        self,
        model: Callable[[], nn.Module],
        train: Iterable[Batch],
        val: Iterable[Batch] | None = None,
        test: Iterable[Batch] | None = None,
        *,
        objective: Objective,
        metric: str | MetricFn = "accuracy",
        higher_is_better: bool | None = None,
        model_name: str = "user",
        dataset_name: str = "user",
    ) -> None:
        if not callable(model):
            raise UserError("model must be a function that builds the network (a factory), or an nn.Module")
        for split, data in (("train", train), ("val", val), ("test", test)):
            if data is not None and not isinstance(data, Iterable):
                raise UserError(f"{split} must be a DataLoader or another iterable of batches, got {type(data)}")
            if isinstance(data, Iterator):
                raise UserError(f"{split} is a one-shot iterator; pass something iterable every epoch (a DataLoader)")
        self.factory, self.splits = model, {"train": train, "val": val, "test": test}
        self.objective = objective
        self.metric, self.metric_fn = resolve(metric, higher_is_better)
        self.model_name, self.dataset_name = model_name, dataset_name
        self.device = torch.device("cpu")
        self._steps: int | None = None
        self._example: Any = None
        self._ranks: RankBatches | None = None
        self._ddp = DDPModel()

    def build_model(self) -> nn.Module:
        model = self.factory()
        if not isinstance(model, nn.Module):
            raise UserError(f"the model factory returned a {type(model).__name__}, not an nn.Module")
        return model

    def to(self, device: torch.device) -> None:
        self.device = device
        self._example = None

    def _batches(self, split: str) -> Iterator[Batch]:
        try:
            for batch in self.splits[split]:
                yield to_device(batch, self.device)
        except UserError as e:  # raised in a DataLoader worker, it arrives wrapped in a traceback
            raise UserError(_worker_message(e)) from None

    def example_input(self) -> Any:
        if self._example is None:
            for batch in self._batches("train"):
                self._example = _first_of(self.objective.inputs(batch))
                break
            else:
                raise UserError("the training data yields no batch")
        return self._example

    def steps_per_epoch(self, batch_size: int) -> int:
        train = self.splits["train"]
        if self._steps is None:
            try:
                self._steps = len(train)
            except TypeError:  # an iterable dataset without a length: count its batches once
                self._steps = sum(1 for _ in train)
        if self._steps == 0:
            raise UserError("the training data yields no batch")
        world = current()
        if not world.distributed:
            return self._steps
        if self._ranks is None:
            self._ranks = RankBatches(train, world, self._steps)
        return self._ranks.steps

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
        steps = self.steps_per_epoch(batch_size)
        seed, world = int(torch.randint(2**62, (1,), generator=generator)), current()
        torch.manual_seed(rank_seed(seed, world.rank) if world.distributed else seed)
        batches, net, handle = self._batches("train"), model, None
        if world.distributed:
            batches = (to_device(b, self.device) for b in self._ranks.epoch(seed))
            net, handle = self._ddp(model, world), average_outside_grads(optimizer, model, world)
        model.train()
        total, count = torch.zeros((), device=self.device), 0
        quiet = not world.main
        try:
            with StepBar(steps, desc, enabled=not quiet) as bar:
                for step, batch in enumerate(batches):
                    lr = lr_at(epoch + min(step / steps, 1.0))
                    set_lr(optimizer, lr)
                    loss = self.objective.loss(net, batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.detach()
                    count += 1
                    bar.update()
        finally:
            if handle is not None:
                handle.remove()
        if world.distributed:
            total, count = all_reduce_sum([total.item(), count], world)
            return total / count
        if count == 0:
            raise UserError("the training data yielded no batch this epoch")
        return total.item() / count

    def has_split(self, split: str) -> bool:
        return self.splits.get(split) is not None

    def evaluate(self, model: nn.Module, split: str, batch_size: int, limit: int | None = None) -> float | None:
        if self.splits.get(split) is None:
            return None
        if limit is not None:
            return self._evaluate_first(model, split, limit)
        world = current()
        if world.distributed:
            if self.metric_fn is not None:
                return share(lambda: self._user_metric(model, split), world)
            mine = (b for i, b in enumerate(self._batches(split)) if i % world.size == world.rank)
            total, count = all_reduce_sum(list(batch_totals(model, mine, self.metric.name, self.objective)), world)
            return finish(self.metric.name, total, int(count))
        if self.metric_fn is not None:
            return self._user_metric(model, split)
        return evaluate_batches(model, self._batches(split), self.metric.name, self.objective)

    def _evaluate_first(self, model: nn.Module, split: str, limit: int) -> float:
        """The metric on the batches holding the first `limit` examples (whole batches; on every rank alike)."""

        def first() -> Iterator[Batch]:
            seen = 0
            for batch in self._batches(split):
                if seen >= limit:
                    return
                yield batch
                inputs = _first_tensor(self.objective.inputs(batch))
                seen += len(inputs) if inputs is not None and inputs.dim() else 1

        if self.metric_fn is not None:
            was_training = model.training
            model.eval()
            try:
                with torch.inference_mode():
                    return float(self.metric_fn(model, first()))
            finally:
                model.train(was_training)
        return evaluate_batches(model, first(), self.metric.name, self.objective)

    def _user_metric(self, model: nn.Module, split: str) -> float:
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                return float(self.metric_fn(model, self._batches(split)))
        finally:
            model.train(was_training)

    def score_batches(self, count: int, batch_size: int, generator: torch.Generator) -> list[Batch]:
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        out = []
        for batch in self._batches("train"):
            if len(out) == count:
                break
            out.append(batch)
        return out


def _worker_message(error: UserError) -> str:
    """The user-facing line of an error re-raised by a DataLoader worker ("Caught UserError in DataLoader worker
    process 0. Original Traceback ... prunekit.common.errors.UserError: <line>")."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught UserError"):
        return lines[-1].split("UserError: ", 1)[-1]
    return lines[0] if lines else "error while loading data"


def describe(obj: Any) -> str:
    """`module:qualname` of a function or class, for the summary (never imported back from it)."""
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"


__all__ = ["LoaderTask", "Metric", "describe"]
