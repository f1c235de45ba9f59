"""CIFAR-10, CIFAR-100 and minicifar (a few CIFAR-10 classes, a few images each) from the files under `data.root`.

Both published layouts are read: the python pickles (through the restricted unpickler) and the binary records.
`data.root` may hold the extracted folder (cifar-10-batches-py, ...) or be that folder itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data import safe_pickle
from prunekit.data.dataset import DATASETS, Dataset, from_arrays, normalize, split_indices

IMAGE_BYTES = 3 * 32 * 32
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class Layout:
    """One way the files of a CIFAR release are laid out on disk."""

    directory: str
    train: tuple[str, ...]
    test: str
    binary: bool
    pattern: str  # for error messages


@dataclass(frozen=True)
class Spec:
    title: str
    layouts: tuple[Layout, ...]
    label_key: str  # python layout: the key of the labels used
    label_bytes: int  # binary layout: label bytes before each image; the last one is the label used
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR10 = Spec(
    title="CIFAR-10",
    layouts=(
        Layout(
            "cifar-10-batches-py",
            tuple(f"data_batch_{i}" for i in range(1, 6)),
            "test_batch",
            False,
            "cifar-10-batches-py/{data_batch_1..5,test_batch}",
        ),
        Layout(
            "cifar-10-batches-bin",
            tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            "test_batch.bin",
            True,
            "cifar-10-batches-bin/{data_batch_1..5.bin,test_batch.bin}",
        ),
    ),
    label_key="labels",
    label_bytes=1,
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)
CIFAR100 = Spec(
    title="CIFAR-100",
    layouts=(
        Layout("cifar-100-python", ("train",), "test", False, "cifar-100-python/{train,test}"),
        Layout("cifar-100-binary", ("train.bin",), "test.bin", True, "cifar-100-binary/{train.bin,test.bin}"),
    ),
    label_key="fine_labels",
    label_bytes=2,
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@DATASETS.register("cifar10")
def build_cifar10(cfg: DataConfig, seed: int) -> Dataset:
    return _build("cifar10", CIFAR10, cfg, seed)


@DATASETS.register("cifar100")
def build_cifar100(cfg: DataConfig, seed: int) -> Dataset:
    return _build("cifar100", CIFAR100, cfg, seed)


@DATASETS.register("minicifar")
def build_minicifar(cfg: DataConfig, seed: int) -> Dataset:
    """CIFAR-10 classes `cfg.subset`, relabelled 0..k-1 in that order; the first `cfg.per_class` training images
    of each class in file order form the training set; the validation split is drawn (seeded) from the other
    training images of those classes, so it never shrinks the training set; the test set is all test images of
    those classes."""
    if len(set(cfg.subset)) != len(cfg.subset):
        raise UserError(f"config key data.subset: classes repeat in {list(cfg.subset)}")
    train_x, train_y, test_x, test_y = read_cifar(cfg.root, CIFAR10)
    relabel = np.full(10, -1, dtype=np.int64)
    relabel[list(cfg.subset)] = np.arange(len(cfg.subset))
    chosen, rest = [], []
    for c in cfg.subset:
        idx = np.flatnonzero(train_y == c)
        if len(idx) < cfg.per_class:
            raise UserError(f"data.per_class={cfg.per_class}: CIFAR-10 class {c} has only {len(idx)} training images")
        chosen.append(idx[: cfg.per_class])
        rest.append(idx[cfg.per_class :])
    train_idx, rest_idx = np.sort(np.concatenate(chosen)), np.sort(np.concatenate(rest))
    what = f"the pool of CIFAR-10 training images of classes {list(cfg.subset)} beyond per_class"
    val_idx = rest_idx[split_indices(len(rest_idx), cfg.val_size, seed, what, min_left=0)[1].numpy()]
    test_idx = np.flatnonzero(relabel[test_y] >= 0)

    def take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return normalize(x[idx], CIFAR10.mean, CIFAR10.std), torch.from_numpy(relabel[y[idx]])

    train, val, test = (
        take(train_x, train_y, train_idx),
        take(train_x, train_y, val_idx),
        take(test_x, test_y, test_idx),
    )
    augment = True if cfg.augment is None else cfg.augment
    return Dataset("minicifar", *train, *val, *test, len(cfg.subset), (3, 32, 32), augment)


def _build(name: str, spec: Spec, cfg: DataConfig, seed: int) -> Dataset:
    train_x, train_y, test_x, test_y = read_cifar(cfg.root, spec)
    train = (normalize(train_x, spec.mean, spec.std), torch.from_numpy(train_y))
    test = (normalize(test_x, spec.mean, spec.std), torch.from_numpy(test_y))
    return from_arrays(name, cfg, seed, train, test, num_classes=spec.num_classes, default_augment=True)


def read_cifar(root: str | None, spec: Spec) -> Arrays:
    """uint8 images [N, 3, 32, 32] and int64 labels of the training and test sets, in file order."""
    expected = " or ".join(layout.pattern for layout in spec.layouts)
    if root is None:
        raise UserError(f"{spec.title} needs data.root: expected {expected}; download from {URL} and set data.root")
    for layout in spec.layouts:
        for directory in (Path(root) / layout.directory, Path(root)):
            if all((directory / f).is_file() for f in (*layout.train, layout.test)):
                train = [_read_batch(directory / f, layout, spec) for f in layout.train]
                test_x, test_y = _read_batch(directory / layout.test, layout, spec)
                return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), test_x, test_y
    raise UserError(
        f"{spec.title} not found in {root}: expected {expected} (or data.root pointing at that folder); "
        f"download from {URL} and set data.root"
    )


def _read_batch(path: Path, layout: Layout, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    x, y = _read_binary(path, spec) if layout.binary else _read_python(path, spec)
    if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
        raise UserError(f"{path}: labels outside 0-{spec.num_classes - 1}")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def _read_binary(path: Path, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Records of `label_bytes` label bytes then 3072 image bytes (1024 red, 1024 green, 1024 blue)."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = spec.label_bytes + IMAGE_BYTES
    if raw.size == 0 or raw.size % record:
        raise UserError(
            f"{path}: truncated or corrupt: {raw.size} bytes is not a whole number of {record}-byte records"
        )
    rows = raw.reshape(-1, record)
    return rows[:, spec.label_bytes :], rows[:, spec.label_bytes - 1]


def _read_python(path: Path, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """A pickled dict with 'data' (uint8 [N, 3072]) and a list of labels; Python 2 files give str keys, files
    written by Python 3 give bytes keys."""
    batch = safe_pickle.load_file(path, encoding="latin1")
    if not isinstance(batch, dict):
        raise UserError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get(spec.label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path}: expected 'data' as uint8 [N, {IMAGE_BYTES}], found {found}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        y = None
    if y is None or y.shape != (len(data),):
        raise UserError(f"{path}: expected '{spec.label_key}' with {len(data)} integer labels")
    return data, y
