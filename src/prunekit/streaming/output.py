"""The pruned checkpoint's files: one shard per block plus one for everything outside the blocks, the index that
`from_pretrained` reads, and the small files of the input directory (config, generation config, tokenizer) copied.

Tensors keep the names, order and dtypes of the input. Those a prune does not change are copied byte for byte from
the input files (never loaded whole); the pruned ones are written from the block in memory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import Tensor

from prunekit.common.atomic import atomic_write_text
from prunekit.streaming.checkpoint import INDEX, SINGLE, Checkpoint
from prunekit.streaming.safetensors_files import Source, write_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx", ".pkl")
MAX_SIDE_FILE = 256 * 2**20


def shard_name(index: int, count: int) -> str:
    """The Hugging Face name of shard `index` (1-based) of `count`."""
    return f"model-{index:05d}-of-{count:05d}.safetensors"


def write_shard(path: Path, names: list[str], ckpt: Checkpoint, changed: dict[str, Tensor]) -> None:
    """A shard of `names` in order: changed tensors (cast back to their stored dtype), the rest copied as bytes."""
    items: list[tuple[str, Source]] = []
    for name in names:
        entry = ckpt.entries[name]
        items.append((name, changed[name].to(entry.dtype) if name in changed else entry))
    write_file(path, items, {"format": "pt"})


def write_index(root: Path, weight_map: dict[str, str], ckpt: Checkpoint) -> None:
    total = sum(ckpt.entries[n].nbytes for n in weight_map)
    text = json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    atomic_write_text(root / INDEX, text + "\n")


def copy_side_files(source: Path, target: Path) -> list[str]:
    """Copy config.json, the tokenizer and other small top-level files (not weights); returns their names."""
    copied = []
    for path in sorted(source.iterdir()):
        name = path.name
        if name.startswith(".") or name in (INDEX, SINGLE) or name.endswith(WEIGHT_SUFFIXES) or not path.is_file():
            continue
        if path.stat().st_size > MAX_SIDE_FILE:
            continue
        shutil.copyfile(path, target / name)
        copied.append(name)
    return copied
