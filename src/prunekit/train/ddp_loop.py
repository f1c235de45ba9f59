"""One epoch over in-memory tensors on one rank of a distributed run: the one-process loop, sharded.

Convention: `batch_size` is the global batch. Every rank draws the same epoch order from the same generator (and
the same augmentation for the whole global batch), then trains on its rows of each global batch (rows rank, rank+N,
...). Each rank's mean loss is weighted by its share of the batch, so DDP's average of the ranks' gradients is the
gradient of the global batch's mean loss, as in one process, also for a last batch that does not divide evenly. A
rank with no row in a batch steps on a zero-weighted example, as DDP needs every rank in every step. The lr is set
from the position in the epoch, as in one process. Dropout draws from a per-rank seed derived from the epoch's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Objective
from prunekit.common.progress import StepBar
from prunekit.data import augment_batch
from prunekit.distributed import DDPModel, World, all_reduce_sum, average_outside_grads, rank_seed
from prunekit.train.optim import set_lr


def train_epoch_ddp(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int,
    lr_at: Callable[[float], float],
    epoch: int,
    generator: torch.Generator,
    world: World,
    wrapper: DDPModel,
    augment: bool = False,
    desc: str = "",
    objective: Objective = DEFAULT,
) -> tuple[float, float]:
    """This rank's part of one epoch; returns (mean loss over the whole epoch, all ranks; lr at the last step)."""
    model.train()
    n = len(x)
    steps = (n + batch_size - 1) // batch_size
    order = torch.randperm(n, generator=generator).to(x.device)
    torch.manual_seed(rank_seed(generator.initial_seed(), world.rank))
    total = torch.zeros((), device=x.device)
    lr = lr_at(float(epoch))
    handle = average_outside_grads(optimizer, model, world)
    quiet = not world.main
    try:
        with StepBar(steps, desc, enabled=not quiet) as bar:
            for step in range(steps):
                lr = lr_at(epoch + step / steps)
                set_lr(optimizer, lr)
                idx = order[step * batch_size : (step + 1) * batch_size]
                xb = augment_batch(x[idx], generator) if augment else x[idx]
                mine = idx[world.rank :: world.size]
                xl, yl = xb[world.rank :: world.size], y[mine]
                weight = len(mine) * world.size / len(idx)
                if len(mine) == 0:
                    xl, yl = xb[:1], y[idx[:1]]
                loss = objective.loss(wrapper(model, world), (xl, yl))
                optimizer.zero_grad(set_to_none=True)
                (loss * weight).backward()
                optimizer.step()
                total += loss.detach() * len(mine)
                bar.update()
    finally:
        handle.remove()
    return all_reduce_sum([total.item()], world)[0] / n, lr
