"""The config sections other than prune: model, data, train and log (frozen dataclasses, validated on creation)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prunekit.common.safe_text import short
from prunekit.config.checks import (
    MAX_BATCH,
    MAX_CLASSES,
    MAX_EPOCHS,
    MAX_EXAMPLE_VALUES,
    MAX_EXAMPLES,
    MAX_LIST,
    MAX_SYNTHETIC_VALUES,
    bounded,
    check,
    check_free_form,
)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "lenet_300_100"  # a registered model (prunekit.models.list_models()), or package.module:factory:
    # user code, imported only with --import package.module, called as factory(**args) (docs/user_models.md)
    args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of a package.module:factory

    def __post_init__(self) -> None:
        check_free_form(self.args, "model.args")


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # mnist | cifar10 | cifar100 | minicifar | synthetic | pystdlib | imagefolder | pkg.mod:factory
    root: str | None = None  # directory with the dataset files; null = the bundled copy (mnist only)
    val_size: int = 5000  # training examples held out for validation
    augment: bool | None = None  # random crop + flip; null = the dataset's default (on for CIFAR)
    train_limit: int | None = None  # train on the first N training examples only (a short trial); null = all
    # synthetic
    shape: tuple[int, ...] = (1, 28, 28)
    classes: int = 10
    train_size: int = 256
    test_size: int = 64
    # minicifar: CIFAR-10 restricted to some classes and a number of training images per class
    subset: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    per_class: int = 500
    # pystdlib: byte-level text of the Python standard library's sources
    seq_len: int = 128  # tokens (bytes) per example
    max_bytes: int = 2_000_000  # bytes read for training (validation and test read a twentieth each)
    # user data: package.module:factory called as factory(**args) (docs/user_models.md); imported with --import
    args: dict[str, Any] = field(default_factory=dict)
    # DataLoader path: batches from a torch DataLoader (any map-style or iterable dataset) instead of slices of
    # in-memory tensors (the default for the built-in datasets, and much faster when the data fits in memory);
    # imagefolder and data factories that return datasets always use it
    loader: bool = False
    workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    pin_memory: bool = False  # page-locked batches, for faster copies to a GPU
    # imagefolder: data.root/<class>/*.png|jpg (or root/train/<class>/..., with optional val/ and test/ beside it)
    image_size: int = 32  # shorter side resized to this, then centre-cropped to a square
    grayscale: bool = False  # 1 channel instead of RGB
    mean: tuple[float, ...] = ()  # per-channel normalisation after scaling to [0, 1]; () = 0.5 for every channel
    std: tuple[float, ...] = ()  # () = 0.5 for every channel
    max_files: int = 1_000_000  # refuse a folder with more image files than this
    max_pixels: int = 50_000_000  # refuse an image with more pixels than this before decoding it (decompression bombs)

    def __post_init__(self) -> None:
        check_free_form(self.args, "data.args")
        bounded(self.workers, "data.workers", 0, 256)
        bounded(self.image_size, "data.image_size", 1, 4096)
        channels = 1 if self.grayscale else 3
        for key, values in (("data.mean", self.mean), ("data.std", self.std)):
            check(len(values) in (0, 1, channels), key, f"one value, or one per channel ({channels})")
            for v in values:
                bounded(v, key, -1e3, 1e3)
        check(all(v > 0 for v in self.std), "data.std", "must be positive")
        bounded(self.max_files, "data.max_files", 1, 10**9)
        bounded(self.max_pixels, "data.max_pixels", 1, 10**10)
        bounded(self.val_size, "data.val_size", 0, MAX_EXAMPLES)
        bounded(self.train_size, "data.train_size", 1, MAX_EXAMPLES)
        if self.train_limit is not None:
            bounded(self.train_limit, "data.train_limit", 1, MAX_EXAMPLES)
        bounded(self.test_size, "data.test_size", 1, MAX_EXAMPLES)
        bounded(self.classes, "data.classes", 2, MAX_CLASSES)
        check(len(self.shape) == 3, "data.shape", f"must be [C, H, W], got {short(list(self.shape))}")
        for dim in self.shape:
            bounded(dim, "data.shape", 1, 65_536)
        values = math.prod(self.shape)
        check(values <= MAX_EXAMPLE_VALUES, "data.shape", f"C x H x W must be at most {MAX_EXAMPLE_VALUES:,}")
        total = (self.train_size + self.test_size) * values
        check(
            total <= MAX_SYNTHETIC_VALUES,
            "data.train_size",
            f"(train_size + test_size) x C x H x W is {total:,}, more than {MAX_SYNTHETIC_VALUES:,}: fewer examples",
        )
        bounded(self.per_class, "data.per_class", 1, MAX_EXAMPLES)
        bounded(self.seq_len, "data.seq_len", 1, 65_536)
        bounded(self.max_bytes, "data.max_bytes", 1, 2**31)
        check(
            2 <= len(self.subset) <= 10 and all(0 <= c < 10 for c in self.subset),
            "data.subset",
            "classes 0-9, two or more",
        )


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 60
    optimizer: str = "adam"  # sgd | adam
    lr: float = 0.0012
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | step | cosine
    milestones: tuple[int, ...] = ()  # epochs at which step multiplies the lr by gamma
    gamma: float = 0.1
    warmup_epochs: int = 0  # linear warmup from 0, counted inside `epochs`
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        bounded(self.epochs, "train.epochs", 0, MAX_EPOCHS)
        bounded(self.batch_size, "train.batch_size", 1, MAX_BATCH)
        check(self.optimizer in ("sgd", "adam"), "train.optimizer", f"sgd | adam, got {short(self.optimizer)}")
        bounded(self.lr, "train.lr", 0, 1e3, low_open=True)
        bounded(self.momentum, "train.momentum", 0, 1)
        bounded(self.weight_decay, "train.weight_decay", 0, 1e3)
        schedules = ("constant", "step", "cosine")
        check(
            self.lr_schedule in schedules,
            "train.lr_schedule",
            f"{' | '.join(schedules)}, got {short(self.lr_schedule)}",
        )
        check(0 <= self.warmup_epochs <= max(self.epochs, 0), "train.warmup_epochs", "must be in [0, epochs]")
        check(len(self.milestones) <= MAX_LIST, "train.milestones", f"at most {MAX_LIST} entries")
        for m in self.milestones:
            bounded(m, "train.milestones", 0, MAX_EPOCHS)
        check(list(self.milestones) == sorted(self.milestones), "train.milestones", "must be increasing")
        bounded(self.gamma, "train.gamma", 0, 1e3, low_open=True)
        bounded(self.eval_batch_size, "train.eval_batch_size", 1, MAX_BATCH)


@dataclass(frozen=True)
class LogConfig:
    """Where else a run is recorded besides its directory. These keys never change results: a run directory accepts
    them changed on a rerun. A logger that fails (or is not installed) is a warning, never a failed run."""

    tensorboard: bool = False  # TensorBoard event files in DIR/tensorboard (a sweep: tensorboard --logdir SWEEP_DIR)
    mlflow: bool = False  # one MLflow run per run directory: the config as params, metrics per round and epoch, files
    mlflow_uri: str | None = None  # tracking URI; null = MLFLOW_TRACKING_URI, else a local file store DIR/../mlruns
    mlflow_experiment: str | None = None  # null = the run's name (a sweep: the sweep's name)
