"""CIFAR-10, CIFAR-100 and minicifar from tiny files in the real python-pickle and binary layouts."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data import cifar, load_dataset

PER_BATCH, N_TEST = 6, 10  # CIFAR-10: 5 batches of 6 training images; CIFAR-100: one file of 30


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str opcodes, like the published cifar-10-batches-py files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        self.write(
            pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj
        )
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def images(n: int, offset: int) -> np.ndarray:
    """uint8 [n, 3072]; the first red pixel is the image's index + offset, so splits can be traced back."""
    x = np.random.default_rng(offset).integers(0, 256, (n, 3072), dtype=np.uint8)
    x[:, 0] = np.arange(n) + offset
    return x


def labels(n: int, offset: int, classes: int) -> list[int]:
    return [(i + offset) % classes for i in range(n)]


def write_python(path: Path, x: np.ndarray, y: list[int], cifar100: bool, py2: bool) -> None:
    batch = {b"batch_label": b"a batch", b"data": x, b"filenames": [b"img_%d.png" % i for i in range(len(x))]}
    if cifar100:
        batch.update({b"fine_labels": y, b"coarse_labels": [v // 5 for v in y]})
    else:
        batch[b"labels"] = y
    out = io.BytesIO()
    (Py2Pickler(out, protocol=2) if py2 else pickle.Pickler(out)).dump(batch)
    path.write_bytes(out.getvalue())


def write_binary(path: Path, x: np.ndarray, y: list[int], cifar100: bool) -> None:
    label_bytes = np.array([[v // 5, v] if cifar100 else [v] for v in y], dtype=np.uint8)
    path.write_bytes(np.concatenate([label_bytes, x], axis=1).tobytes())


def write_cifar(root: Path, kind: str = "cifar10", binary: bool = False, py2: bool = False, flat: bool = False) -> None:
    """Files in the layout of the real release, in root/<folder> (or directly in root when flat)."""
    cifar100 = kind == "cifar100"
    spec = cifar.CIFAR100 if cifar100 else cifar.CIFAR10
    layout = spec.layouts[1 if binary else 0]
    directory = root if flat else root / layout.directory
    directory.mkdir(parents=True, exist_ok=True)
    n = 5 * PER_BATCH // len(layout.train)
    files = [(name, images(n, i * n), labels(n, i * n, spec.num_classes)) for i, name in enumerate(layout.train)]
    files.append((layout.test, images(N_TEST, 200), labels(N_TEST, 3, spec.num_classes)))
    for name, x, y in files:
        if binary:
            write_binary(directory / name, x, y, cifar100)
        else:
            write_python(directory / name, x, y, cifar100, py2)


def red(x: torch.Tensor, spec: cifar.Spec = cifar.CIFAR10) -> list[int]:
    """Undo the normalisation of the first red pixel."""
    return np.rint((x[:, 0, 0, 0].numpy() * spec.std[0] + spec.mean[0]) * 255).astype(int).tolist()


@pytest.mark.parametrize(
    "kind,binary,py2,flat",
    [
        ("cifar10", False, False, False),
        ("cifar10", False, True, False),
        ("cifar10", True, False, False),
        ("cifar10", True, False, True),
        ("cifar100", False, False, False),
        ("cifar100", False, True, True),
        ("cifar100", True, False, False),
    ],
)
def test_layouts_load(tmp_path: Path, kind: str, binary: bool, py2: bool, flat: bool) -> None:
    write_cifar(tmp_path, kind, binary, py2, flat)
    spec = cifar.CIFAR100 if kind == "cifar100" else cifar.CIFAR10
    data = load_dataset(DataConfig(name=kind, root=str(tmp_path), val_size=0), seed=0)
    assert data.input_shape == (3, 32, 32) and data.num_classes == spec.num_classes and data.augment
    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (N_TEST, 3, 32, 32)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert red(data.train_x, spec) == list(range(30)) and red(data.test_x, spec) == list(range(200, 200 + N_TEST))
    assert data.train_y.tolist() == labels(30, 0, spec.num_classes)  # fine labels for CIFAR-100
    assert data.test_y.tolist() == labels(N_TEST, 3, spec.num_classes)
    x = images(PER_BATCH, 0).reshape(-1, 3, 32, 32)[1] / 255.0
    expected = (x - np.array(spec.mean)[:, None, None]) / np.array(spec.std)[:, None, None]
    np.testing.assert_allclose(data.train_x[1].numpy(), expected, atol=1e-5)


def test_validation_split_and_augment_flag(tmp_path: Path) -> None:
    write_cifar(tmp_path, binary=True)
    cfg = DataConfig(name="cifar10", root=str(tmp_path), val_size=10, augment=False)
    a, b, c = load_dataset(cfg, seed=3), load_dataset(cfg, seed=3), load_dataset(cfg, seed=4)
    assert not a.augment and len(a.train_x) == 20 and len(a.val_x) == 10
    assert sorted(red(a.train_x) + red(a.val_x)) == list(range(30))
    assert red(a.val_x) == red(b.val_x) and red(a.val_x) != red(c.val_x)


@pytest.mark.parametrize("kind", ["cifar10", "cifar100", "minicifar"])
def test_missing_files_name_what_is_expected(tmp_path: Path, kind: str) -> None:
    for root in (None, str(tmp_path)):
        with pytest.raises(UserError) as e:
            load_dataset(DataConfig(name=kind, root=root), seed=0)
        message = str(e.value)
        assert "\n" not in message and "https://www.cs.toronto.edu/~kriz/cifar.html" in message
        assert "data.root" in message and (root is None or root in message)
        assert ("cifar-100-python/{train,test}" if kind == "cifar100" else "data_batch_1..5,test_batch}") in message


def test_truncated_binary_and_bad_batches_are_user_errors(tmp_path: Path) -> None:
    write_cifar(tmp_path, binary=True)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(UserError, match=f"{path}: truncated"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)), seed=0)
    write_cifar(tmp_path / "py")
    path = tmp_path / "py" / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(UserError, match=f"{path}: expected 'data' as uint8"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path / "py")), seed=0)


class Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


def test_malicious_batch_is_refused_and_never_runs(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    target = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(pickle.dumps({b"data": Payload(target), b"labels": [0]}))
    with pytest.raises(UserError, match=f"refusing to unpickle .*system from {path}: only numpy arrays are allowed"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)), seed=0)
    assert not target.exists()


def test_minicifar_selects_and_relabels(tmp_path: Path) -> None:
    write_cifar(tmp_path, binary=True)  # training image i has class i % 10; test image j has class (j + 3) % 10
    cfg = DataConfig(name="minicifar", root=str(tmp_path), subset=(7, 2), per_class=2, val_size=1)
    data = load_dataset(cfg, seed=0)
    assert data.num_classes == 2 and data.input_shape == (3, 32, 32) and data.augment
    assert red(data.train_x) == [2, 7, 12, 17] and data.train_y.tolist() == [1, 0, 1, 0]
    assert red(data.test_x) == [204, 209] and data.test_y.tolist() == [0, 1]  # test classes 7 and 2
    (val,) = red(data.val_x)
    assert val in (22, 27) and data.val_y.tolist() == [0 if val == 27 else 1]
    assert red(load_dataset(dataclasses.replace(cfg, val_size=2), seed=0).val_x) == [22, 27]
    with pytest.raises(UserError, match="data.val_size=3 is too large"):
        load_dataset(DataConfig(name="minicifar", root=str(tmp_path), subset=(7, 2), per_class=2, val_size=3), 0)
    with pytest.raises(UserError, match="data.per_class=4: CIFAR-10 class 7 has only 3"):
        load_dataset(DataConfig(name="minicifar", root=str(tmp_path), subset=(7, 2), per_class=4), 0)
