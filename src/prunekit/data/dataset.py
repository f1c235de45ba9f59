"""The in-memory Dataset every builder returns, the seeded validation split, and batch augmentation.

Whole splits live as tensors (no DataLoader): MNIST and CIFAR fit in memory, and slicing a tensor is many times
faster than a per-sample pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.common.registry import Registry
from prunekit.config import DataConfig

DATASETS: Registry[Callable[[DataConfig, int], Dataset]] = Registry("dataset")


@dataclass
class Dataset:
    """Train/val/test splits as tensors: float32 images [N, C, H, W] (normalised) and int64 labels, or for text
    int64 token ids [N, T] and next-token targets [N, T] (input_shape (T,), num_classes the vocabulary)."""

    name: str
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    augment: bool  # whether training batches should go through augment_batch
    metric: str = "accuracy"  # what the runner's Task reports: accuracy, or perplexity for text


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Build the dataset named by `cfg.name`; `seed` chooses the validation split (and synthetic data).
    `cfg.train_limit` keeps the first N training examples (after the validation split is taken out)."""
    return limit_train(DATASETS.get(cfg.name)(cfg, seed), cfg.train_limit)


def limit_train(dataset: Dataset, limit: int | None) -> Dataset:
    """The dataset with only its first `limit` training examples (None: unchanged)."""
    if limit is None:
        return dataset
    return dataclasses.replace(dataset, train_x=dataset.train_x[:limit], train_y=dataset.train_y[:limit])


def split_indices(
    n: int, val_size: int, seed: int, what: str = "the training set", min_left: int = 1
) -> tuple[Tensor, Tensor]:
    """(rest, val) indices: `val_size` of range(n) chosen by a seeded permutation, the rest in their original order.

    At least `min_left` indices must stay outside the validation split (one training example, by default).
    """
    if val_size > 0 and val_size > n - min_left:
        needs = f", and at least {min_left} must remain for training" if min_left else ""
        raise UserError(f"data.val_size={val_size} is too large: {what} has {n} examples{needs}; lower data.val_size")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 images [N, C, H, W] -> float32 scaled to [0, 1], then standardised with per-channel mean and std."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).div_(255.0)
    shape = (1, -1, 1, 1)
    return x.sub_(torch.tensor(mean).view(shape)).div_(torch.tensor(std).view(shape))


def from_arrays(
    name: str,
    cfg: DataConfig,
    seed: int,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    default_augment: bool,
    val_size: int | None = None,
) -> Dataset:
    """Carve the validation split out of `train` and assemble the Dataset (images already normalised)."""
    x, y = train
    train_idx, val_idx = split_indices(len(x), cfg.val_size if val_size is None else val_size, seed)
    return Dataset(
        name=name,
        train_x=x[train_idx],
        train_y=y[train_idx],
        val_x=x[val_idx],
        val_y=y[val_idx],
        test_x=test[0],
        test_y=test[1],
        num_classes=num_classes,
        input_shape=tuple(x.shape[1:]),
        augment=default_augment if cfg.augment is None else cfg.augment,
    )


def augment_batch(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop back to the input size after zero padding, then a random horizontal flip, per image.

    One gather over the whole batch (no Python loop); the random draws come from `generator` only, on its own
    device, so a given generator state gives the same batch on CPU and CUDA.
    """
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=generator.device).to(x.device)
    flip = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)
    cols_in = torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols_in.flip(0), cols_in) + offsets[1, :, None]
    padded = F.pad(x, (padding, padding, padding, padding))
    padded = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return padded.gather(3, cols[:, None, None, :].expand(n, c, h, w))
