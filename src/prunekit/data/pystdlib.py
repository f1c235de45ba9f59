"""Byte-level text every machine has offline: the Python standard library's own `.py` sources, as `pystdlib`.

Files: every `*.py` under `sysconfig.get_paths()["stdlib"]`, leaving out `site-packages`, `dist-packages`, test
directories (`test`, `tests`, `idle_test`) and `__pycache__`. Each file goes to one split by a hash of its path
relative to the stdlib root (CRC-32 mod 20: 0 test, 1 validation, else training), so a file never straddles two
splits and adding a file moves no other. Within a split, files are read in the order of that hash (a fixed shuffle
that spreads a size cap across the library) until the split's cap: `data.max_bytes` for training, a twentieth of it
each for validation and test. The result depends on the Python version whose library is read; the file list is
deterministic for a given installation.

Examples are windows of T + 1 bytes taken every T bytes (T = `data.seq_len`): x = the first T bytes, y = the next T
(x shifted by one), both int64 token ids in [0, 256).
"""

from __future__ import annotations

import os
import sysconfig
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.config import DataConfig
from prunekit.data.dataset import DATASETS, Dataset

VOCAB = 256
SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
SPLITS = {"test": (0,), "val": (1,), "train": tuple(range(2, 20))}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def source_files(root: Path) -> dict[str, list[Path]]:
    """Each split's files, in the order of the hash of their path relative to `root`."""
    out: dict[str, list[tuple[int, str, Path]]] = {split: [] for split in SPLITS}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]  # never descend into installed packages or tests
        for name in names:
            path = Path(folder, name)
            if not name.endswith(".py") or not path.is_file():
                continue
            key = path.relative_to(root).as_posix()
            digest = zlib.crc32(key.encode())
            split = next(name for name, buckets in SPLITS.items() if digest % 20 in buckets)
            out[split].append((digest, key, path))
    return {split: [p for _, _, p in sorted(items)] for split, items in out.items()}


def read_bytes(files: list[Path], cap: int) -> np.ndarray:
    """The files' bytes, concatenated in order, stopping at `cap` bytes (the last file cut)."""
    chunks, total = [], 0
    for path in files:
        if total >= cap:
            break
        data = path.read_bytes()[: cap - total]
        chunks.append(np.frombuffer(data, dtype=np.uint8))
        total += len(data)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8)


def windows(data: np.ndarray, seq_len: int) -> tuple[Tensor, Tensor]:
    """(x, y): windows of seq_len + 1 bytes every seq_len bytes; y is x shifted by one token."""
    count = (len(data) - 1) // seq_len
    if count < 1:
        raise UserError(f"pystdlib: {len(data)} bytes cannot make one window of {seq_len + 1}; raise data.max_bytes")
    starts = np.arange(count)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    tokens = torch.from_numpy(data[starts].astype(np.int64))
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


@DATASETS.register("pystdlib")
def build(cfg: DataConfig, seed: int) -> Dataset:
    """Token windows of the standard library's sources; `seed` plays no part (the splits are fixed by file)."""
    files = source_files(stdlib_root())
    caps = {"train": cfg.max_bytes, "val": max(1, cfg.max_bytes // 20), "test": max(1, cfg.max_bytes // 20)}
    split = {name: windows(read_bytes(files[name], caps[name]), cfg.seq_len) for name in SPLITS}
    return token_dataset("pystdlib", split, VOCAB, cfg.seq_len)


def token_dataset(name: str, split: dict[str, tuple[Tensor, Tensor]], vocab: int, seq_len: int) -> Dataset:
    """A language-model Dataset from (inputs, targets) windows per split, scored by perplexity."""
    return Dataset(
        name=name,
        train_x=split["train"][0],
        train_y=split["train"][1],
        val_x=split["val"][0],
        val_y=split["val"][1],
        test_x=split["test"][0],
        test_y=split["test"][1],
        num_classes=vocab,
        input_shape=(seq_len,),
        augment=False,
        metric="perplexity",
    )
