"""The dataset contract over every registered builder, the seeded split, augmentation and synthetic data."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data import DATASETS, Dataset, augment_batch, load_dataset
from prunekit.data.dataset import split_indices


def write_fake_files(root: Path) -> None:
    """Tiny MNIST IDX files and CIFAR binary batches (30 training images, classes in turn) under `root`."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        x, y = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10
        (root / f"{split}-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", n, 28, 28) + x.tobytes())
        (root / f"{split}-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", n) + y.tobytes())
    for folder, names, label_bytes in (
        ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"], 1),
        ("cifar-100-binary", ["train.bin", "test.bin"], 2),
    ):
        (root / folder).mkdir()
        for name in names:
            n = 6 if name.startswith("data") else 30 if name == "train.bin" else 10
            y = np.repeat((np.arange(n) % 10)[:, None], label_bytes, axis=1).astype(np.uint8)
            (root / folder / name).write_bytes(
                np.concatenate([y, rng.integers(0, 256, (n, 3072), np.uint8)], 1).tobytes()
            )


CONTRACT = {
    "mnist": {},
    "cifar10": {},
    "cifar100": {},
    "minicifar": {"subset": (4, 1, 5), "per_class": 2},
    "synthetic": {"shape": (3, 8, 8), "classes": 5, "train_size": 40, "test_size": 12},
}


# token datasets: their contracts are in tests/hf/test_smollm2.py and tests/data/test_pystdlib.py
TEXT = ("prose", "pystdlib")


def test_every_registered_dataset_is_covered() -> None:
    assert sorted([*CONTRACT, *TEXT]) == DATASETS.names()


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_dataset_contract(tmp_path: Path, name: str) -> None:
    write_fake_files(tmp_path)
    cfg = DataConfig(name=name, root=str(tmp_path), val_size=3, **CONTRACT[name])
    data = load_dataset(cfg, seed=0)
    assert isinstance(data, Dataset) and data.name == name
    assert data.augment == (name in ("cifar10", "cifar100", "minicifar"))
    assert len(data.val_x) == 3 and len(data.train_x) > 0 and len(data.test_x) > 0
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y), (data.test_x, data.test_y)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == data.input_shape and len(x) == len(y)
        assert y.min() >= 0 and y.max() < data.num_classes
    flat = torch.cat([data.train_x, data.val_x]).flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(flat)  # the validation images are not training images
    again = load_dataset(cfg, seed=0)
    assert torch.equal(again.val_x, data.val_x) and torch.equal(again.train_y, data.train_y)
    off = DataConfig(name=name, root=str(tmp_path), val_size=3, augment=False, **CONTRACT[name])
    assert load_dataset(off, seed=0).augment is False


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="unknown dataset 'cifar': did you mean .*known: cifar10, cifar100"):
        load_dataset(DataConfig(name="cifar"), seed=0)


def test_split_indices() -> None:
    rest, val = split_indices(10, 0, seed=0)
    assert rest.tolist() == list(range(10)) and val.numel() == 0
    rest, val = split_indices(10, 4, seed=0)
    assert sorted(rest.tolist() + val.tolist()) == list(range(10)) and rest.tolist() == sorted(rest.tolist())
    assert torch.equal(split_indices(10, 4, seed=0)[1], val) and not torch.equal(split_indices(10, 4, seed=1)[1], val)
    assert len(split_indices(10, 10, seed=0, min_left=0)[1]) == 10
    with pytest.raises(UserError, match="data.val_size=10 is too large: the training set has 10 examples"):
        split_indices(10, 10, seed=0)


def crop_matches(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """[N, 2, 9, 9]: whether out[n] equals the zero-padded crop of x[n] at each offset, unflipped and flipped."""
    n, c, h, w = x.shape
    windows = F.pad(x, (4, 4, 4, 4)).unfold(2, h, 1).unfold(3, w, 1)  # [N, C, 9, 9, H, W]
    plain = (windows == out[:, :, None, None]).all(-1).all(-1).all(1)
    flipped = (windows == out.flip(-1)[:, :, None, None]).all(-1).all(-1).all(1)
    return torch.stack([plain, flipped], 1)


def test_augment_batch_crops_and_flips() -> None:
    x = torch.randn(64, 3, 32, 32)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    matches = crop_matches(x, out)
    assert (matches.flatten(1).sum(1) == 1).all()  # every output is exactly one padded crop, mirrored or not
    flipped, offsets = matches.any(-1).any(-1)[:, 1], matches.any(1).flatten(1).float().argmax(1)
    assert 10 < flipped.sum() < 54 and len(set(offsets.tolist())) > 20
    assert (out != x).flatten(1).any(1).float().mean() > 0.9
    assert torch.equal(crop_matches(x, x)[:, 0, 4, 4], torch.ones(64, dtype=torch.bool))  # the check can match


def test_augment_batch_is_deterministic_under_the_generator() -> None:
    x = torch.randn(16, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, augment_batch(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, augment_batch(x, torch.Generator().manual_seed(6)))
    generator = torch.Generator().manual_seed(5)
    assert torch.equal(augment_batch(x, generator), a) and not torch.equal(augment_batch(x, generator), a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_batch_on_cuda_matches_cpu() -> None:
    x = torch.randn(32, 3, 32, 32)
    on_cpu = augment_batch(x, torch.Generator().manual_seed(1))
    on_cuda = augment_batch(x.cuda(), torch.Generator().manual_seed(1))
    assert on_cuda.is_cuda and torch.equal(on_cuda.cpu(), on_cpu)
    assert augment_batch(x.cuda(), torch.Generator("cuda").manual_seed(1)).shape == x.shape


def test_synthetic_is_seeded_and_clips_the_validation_split() -> None:
    cfg = DataConfig(name="synthetic", shape=(2, 5, 7), classes=3, train_size=40, test_size=9)
    data = load_dataset(cfg, seed=0)  # default val_size 5000 -> 40 // 4
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (30, 10, 9)
    assert data.input_shape == (2, 5, 7) and data.num_classes == 3 and not data.augment
    assert torch.equal(load_dataset(cfg, seed=0).train_x, data.train_x)
    assert not torch.equal(load_dataset(cfg, seed=1).train_x, data.train_x)
    assert len(load_dataset(DataConfig(name="synthetic", train_size=40, val_size=3), seed=0).val_x) == 3


def test_synthetic_is_learnable() -> None:
    cfg = DataConfig(name="synthetic", shape=(1, 8, 8), classes=4, train_size=256, test_size=256, val_size=0)
    data = load_dataset(cfg, seed=0)
    assert abs(data.train_x.mean()) < 0.1 and abs(data.train_x.std() - 1) < 0.1
    assert sorted(set(data.train_y.tolist())) == [0, 1, 2, 3]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

    def accuracy() -> float:
        return (model(data.test_x).argmax(1) == data.test_y).float().mean().item()

    before = accuracy()
    for _ in range(10):
        optimizer.zero_grad()
        F.cross_entropy(model(data.train_x), data.train_y).backward()
        optimizer.step()
    assert accuracy() > max(0.8, before + 0.3)
