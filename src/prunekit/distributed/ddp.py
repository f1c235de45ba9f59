"""DistributedDataParallel for the Tasks' training steps.

A Task keeps one `DDPModel` and asks it for the wrapper every step: the wrapper is rebuilt when the model's
parameters were replaced (channel surgery by gradual pruning, mid-epoch, on every rank at the same step). Parameters
the optimizer trains outside the model (STR's per-layer thresholds) are not seen by DDP; `average_outside_grads`
averages their gradients over the ranks before each optimizer step, so every rank takes the same step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.hooks import RemovableHandle

from prunekit.distributed.world import World


class DDPModel:
    """The DDP wrapper of the model a Task trains, rebuilt when the model or its parameters change."""

    def __init__(self) -> None:
        self._model: nn.Module | None = None
        self._params: list[nn.Parameter] = []
        self._wrapper: nn.Module | None = None

    def __call__(self, model: nn.Module, world: World) -> nn.Module:
        params = list(model.parameters())
        same = (
            self._model is model
            and len(params) == len(self._params)
            and all(p is q for p, q in zip(params, self._params, strict=True))
        )
        if not same:
            self._wrapper = None  # release the old reducer before building the new one
            device_ids = [world.local_rank] if world.backend == "nccl" else None
            self._wrapper = DistributedDataParallel(model, device_ids=device_ids)
            self._model, self._params = model, params
        return self._wrapper


def average_outside_grads(optimizer: torch.optim.Optimizer, model: nn.Module, world: World) -> RemovableHandle:
    """Before every step, average over the ranks the gradients of optimizer parameters that are not the model's."""

    def hook(opt: torch.optim.Optimizer, *_: object) -> None:
        inside = {id(p) for p in model.parameters()}
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) not in inside and p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad.div_(world.size)

    return optimizer.register_step_pre_hook(hook)


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each rank (dropout, a user's augmentation), derived from the epoch's seed."""
    return (seed * 1_000_003 + 7 * rank + 1) % (2**63 - 1)
