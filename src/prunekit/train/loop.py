"""The training loop: batches sliced from in-memory tensors, the lr set per step, masks kept by an optimizer hook.

Every epoch's randomness (data order, augmentation) comes from a generator seeded by the caller for that epoch,
so an epoch replays identically after a resume without saving any RNG state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Objective
from prunekit.common.progress import StepBar
from prunekit.data import augment_batch
from prunekit.train.optim import set_lr


@dataclass
class EpochResult:
    epoch: int  # position in the lr schedule, 0-based
    train_loss: float
    val_accuracy: float | None
    lr: float
    seconds: float


@torch.inference_mode()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy as a fraction; None-safe for an empty split is the caller's job."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    for i in range(0, len(x), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(dim=1) == y[i : i + batch_size]).sum()
    model.train(was_training)
    return correct.item() / max(len(x), 1)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int,
    lr_at: Callable[[float], float],
    epoch: int,
    generator: torch.Generator,
    augment: bool = False,
    desc: str = "",
    objective: Objective = DEFAULT,
) -> tuple[float, float]:
    """One pass over (x, y) in a seeded random order; returns (mean loss, lr at the last step).

    The loss is `objective.loss(model, (x_batch, y_batch))`: cross-entropy by default.
    """
    model.train()
    n = len(x)
    steps = (n + batch_size - 1) // batch_size
    order = torch.randperm(n, generator=generator).to(x.device)
    total = torch.zeros((), device=x.device)
    lr = lr_at(float(epoch))
    with StepBar(steps, desc) as bar:
        for step in range(steps):
            lr = lr_at(epoch + step / steps)
            set_lr(optimizer, lr)
            idx = order[step * batch_size : (step + 1) * batch_size]
            xb = x[idx]
            if augment:
                xb = augment_batch(xb, generator)
            loss = objective.loss(model, (xb, y[idx]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
            bar.update()
    return total.item() / n, lr


def run_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: object,
    *,
    batch_size: int,
    eval_batch_size: int,
    lr_at: Callable[[float], float],
    epochs: range,
    seed_for_epoch: Callable[[int], int],
    on_epoch_end: Callable[[EpochResult], None] | None = None,
    desc: str = "",
) -> list[EpochResult]:
    """Train over the schedule positions in `epochs`, evaluating on the validation split after each."""
    results = []
    for epoch in epochs:
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed_for_epoch(epoch))
        loss, lr = train_epoch(
            model,
            optimizer,
            data.train_x,
            data.train_y,
            batch_size=batch_size,
            lr_at=lr_at,
            epoch=epoch,
            generator=generator,
            augment=data.augment,
            desc=f"{desc} epoch {epoch + 1}",
        )
        val = evaluate(model, data.val_x, data.val_y, eval_batch_size) if len(data.val_x) else None
        result = EpochResult(epoch, loss, val, lr, time.perf_counter() - start)
        results.append(result)
        if on_epoch_end is not None:
            on_epoch_end(result)
    return results
