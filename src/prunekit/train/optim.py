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


def final_lr(cfg: TrainConfig) -> float:
    """The lr at the end of training: the default fine-tuning lr, floored at lr/1000 (cosine ends at 0)."""
    return max(lr_at(cfg, max(cfg.epochs - 1e-6, 0.0)), cfg.lr * 1e-3)
