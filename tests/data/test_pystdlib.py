"""The byte-level stdlib dataset: deterministic, split by file, capped, and next-token windows."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data import load_dataset
from prunekit.data.pystdlib import read_bytes, source_files, stdlib_root, windows


def test_files_come_from_the_stdlib_and_each_lands_in_one_split():
    files = source_files(stdlib_root())
    assert stdlib_root() == Path(sysconfig.get_paths()["stdlib"])
    everything = [p for split in files.values() for p in split]
    assert len(everything) == len(set(everything)) > 100
    assert all(files[s] for s in ("train", "val", "test"))
    assert all(p.suffix == ".py" and "site-packages" not in p.parts and "test" not in p.parts for p in everything)
    assert source_files(stdlib_root()) == files  # the same list every time


def test_windows_are_next_token_pairs():
    data = np.arange(25, dtype=np.uint8)
    x, y = windows(data, 4)
    assert x.shape == y.shape == (6, 4) and x.dtype == torch.int64
    assert x[1].tolist() == [4, 5, 6, 7] and y[1].tolist() == [5, 6, 7, 8]
    with pytest.raises(UserError, match="max_bytes"):
        windows(data[:3], 4)


def test_dataset_is_capped_deterministic_and_held_out_by_file():
    cfg = DataConfig(name="pystdlib", seq_len=32, max_bytes=40_000)
    first, again = load_dataset(cfg, 0), load_dataset(cfg, 1)
    assert first.train_x.shape == ((40_000 - 1) // 32, 32) and first.val_x.shape == ((2_000 - 1) // 32, 32)
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.test_y, again.test_y)
    assert first.num_classes == 256 and first.input_shape == (32,)
    files = source_files(stdlib_root())
    assert bytes(first.test_x[0].tolist()) == read_bytes(files["test"], 32).tobytes()
    assert bytes(first.train_x[0].tolist()) == read_bytes(files["train"], 32).tobytes()
