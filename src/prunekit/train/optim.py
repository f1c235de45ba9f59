"""Optimizers and learning-rate schedules.

The lr is a pure function of the position in training (epoch + fraction), set on the optimizer before every step:
no scheduler state to checkpoint, and rewinding or resuming a schedule is just starting from another position.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from prunekit.config import TrainConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
            foreach=True,
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def lr_at(cfg: TrainConfig, position: float) -> float:
    """The learning rate at `position` epochs into the schedule (warmup, then constant, step or cosine)."""
    if cfg.warmup_epochs and position < cfg.warmup_epochs:
        return cfg.lr * position / cfg.warmup_epochs
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.gamma ** sum(position >= m for m in cfg.milestones)
    if cfg.lr_schedule == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1)
        t = min(max(position - cfg.warmup_epochs, 0.0) / span, 1.0)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    return cfg.lr


COSINE_FINETUNE_FRACTION = 0.01  # fine-tuning lr under cosine: 1/100 of the base lr (see finetune_lr)
FINETUNE_TOO_SMALL = 1e-3  # a fine-tuning lr at or below this fraction of the base lr barely trains: warn


def finetune_lr(cfg: TrainConfig, override: float | None = None) -> float:
    """The constant lr of fine-tuning (prune.finetune_lr, or this default when it is null).

    Fine-tuning in Renda et al. 2020 trains the pruned network "at the final learning rate" of the original step
    schedule, small but real: 1e-3 after 0.1 decayed twice by 10 (their CIFAR ResNets; Li et al. 2017 retrain at
    the same 1e-3). So: constant schedule -> its lr; step -> the lr after the last milestone, lr * gamma^k; cosine,
    which decays to 0 and has no last phase, -> COSINE_FINETUNE_FRACTION * lr, the lr those step schedules end at
    (1/100 of the base). Warmup does not change it.
    """
    if override is not None:
        return override
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.gamma ** len(cfg.milestones)
    if cfg.lr_schedule == "cosine":
        return cfg.lr * COSINE_FINETUNE_FRACTION
    return cfg.lr


def finetune_warning(cfg: TrainConfig, override: float | None = None) -> str | None:
    """Why a fine-tuning lr will barely train (at or below FINETUNE_TOO_SMALL of the base lr), or None."""
    lr = finetune_lr(cfg, override)
    if lr > cfg.lr * FINETUNE_TOO_SMALL:
        return None
    source = "prune.finetune_lr" if override is not None else f"the default for a {cfg.lr_schedule} schedule"
    return (
        f"fine-tuning lr {lr:.3g} ({source}) is <= {FINETUNE_TOO_SMALL:g} x train.lr {cfg.lr:g}: the pruned network "
        f"will barely train; set prune.finetune_lr (e.g. {cfg.lr * 0.01:.3g}) or use prune.rewind: lr"
    )


def replay_window(epochs: int, retrain: int, squeeze: bool) -> tuple[int, float]:
    """(start position, schedule epochs per retraining epoch) for replaying a training schedule of `epochs` epochs
    in `retrain` epochs of retraining (learning-rate rewinding).

    Renda et al. 2020 retrain for t epochs with the learning rates of the *last* t epochs of training (the lr
    schedule rewound to T - t), at the schedule's own pace: so t = T replays all of it and a shorter retraining
    starts further down the schedule. squeeze=True instead plays the whole schedule, compressed into t epochs (what
    AIMP does with its short rounds). A retraining longer than the schedule starts at 0 and runs past its end.
    """
    if retrain <= 0:
        return 0, 1.0
    if squeeze:
        return 0, epochs / retrain
    return max(epochs - retrain, 0), 1.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every param group; a group with an "lr_scale" entry (a training hook's own
    parameters, e.g. BitPruning's bitlengths) gets lr times that scale."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
