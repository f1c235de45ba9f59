"""Synthetic classification data: fast, offline and learnable, for tests and smoke runs.

Each class has a fixed random mean pattern; an example is its class pattern plus unit Gaussian noise, scaled so
pixels have roughly mean 0 and std 1. A linear model or a small network learns it within an epoch or two, so a
test can see training raise accuracy well above chance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from prunekit.config import DataConfig
from prunekit.data.dataset import DATASETS, Dataset, from_arrays

SIGNAL = 0.5  # std of the class patterns relative to the noise


@DATASETS.register("synthetic")
def build(cfg: DataConfig, seed: int) -> Dataset:
    """`cfg.train_size` training examples (validation carved from them) and `cfg.test_size` test examples.

    The validation split is min(cfg.val_size, train_size // 4) examples: the default val_size (5000, meant for
    MNIST) would otherwise exceed any synthetic training set.
    """
    generator = torch.Generator().manual_seed(seed)
    shape = tuple(cfg.shape)
    patterns = torch.randn((cfg.classes, *shape), generator=generator) * SIGNAL

    def sample(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(cfg.classes, (n,), generator=generator)
        x = patterns[y] + torch.randn((n, *shape), generator=generator)
        return x / math.sqrt(1.0 + SIGNAL**2), y

    train, test = sample(cfg.train_size), sample(cfg.test_size)
    val_size = min(cfg.val_size, cfg.train_size // 4)
    return from_arrays("synthetic", cfg, seed, train, test, cfg.classes, default_augment=False, val_size=val_size)
