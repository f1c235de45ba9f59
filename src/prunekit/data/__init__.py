"""Datasets as in-memory tensors: `load_dataset(cfg.data, seed)` returns train/val/test splits.

Builders register in `DATASETS`; importing this package registers mnist, cifar10, cifar100, minicifar, synthetic,
pystdlib (byte-level text of the Python standard library) and prose (English text tokenised for SmolLM2).
"""

from prunekit.data import cifar, mnist, prose, pystdlib, synthetic
from prunekit.data.dataset import DATASETS, Dataset, augment_batch, load_dataset

__all__ = ["DATASETS", "Dataset", "augment_batch", "load_dataset", "cifar", "mnist", "prose", "pystdlib", "synthetic"]
