"""The DataLoader path: batches from torch DataLoaders over any map-style or iterable dataset, for data that does not
fit in memory (an image folder, a user's dataset) or when `data.loader: true` asks for it.

The in-memory path (slices of tensors, prunekit.tasks.TensorTask) stays the default for the built-in datasets: it is
many times faster than a per-sample pipeline for data that fits. Shuffling and worker seeds draw from torch's global
RNG, which the LoaderTask seeds before every epoch, so epochs replay identically after a resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from prunekit.config import DataConfig
from prunekit.data.dataset import Dataset, augment_batch


def make_loader(dataset: Any, batch_size: int, shuffle: bool, cfg: DataConfig) -> DataLoader:
    """A DataLoader with the config's workers and pinned memory; an iterable dataset is never shuffled here."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and not isinstance(dataset, IterableDataset),
        num_workers=cfg.workers,
        pin_memory=cfg.pin_memory,
    )


def is_dataset(obj: Any) -> bool:
    """A torch dataset to wrap in a DataLoader (map-style with __getitem__ and __len__, or iterable)."""
    return isinstance(obj, IterableDataset) or (
        isinstance(obj, torch.utils.data.Dataset) and hasattr(obj, "__getitem__") and hasattr(obj, "__len__")
    )


class AugmentedBatches:
    """Training batches of an image DataLoader through prunekit's random crop and flip (the in-memory path's
    augmentation), drawn from a generator seeded from torch's global RNG when an epoch starts."""

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,))))
        for x, y, *rest in self.loader:
            yield (augment_batch(x, gen), y, *rest)


def tensor_loaders(data: Dataset, batch_size: int, eval_batch_size: int, cfg: DataConfig) -> dict[str, Any]:
    """DataLoaders over an in-memory Dataset's splits (the DataLoader path for the built-in datasets)."""
    splits: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        if not len(x):
            splits[split] = None
            continue
        train = split == "train"
        loader = make_loader(TensorDataset(x, y), batch_size if train else eval_batch_size, train, cfg)
        splits[split] = AugmentedBatches(loader) if train and data.augment else loader
    return splits
