"""Small real model files to mutate, and the safetensors layout they share: 8-byte header length, JSON, data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

import prunekit
from prunekit.pruning.structured import prune_channels


def make_files(root: Path) -> dict[str, Path]:
    """A dense, a sparse (bitmask and gaps8 indices) and a compact (channel-pruned) LeNet-300-100 on 1x8x8 inputs."""
    torch.manual_seed(0)
    model = prunekit.create_model("lenet_300_100", 4, (1, 8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masks = prunekit.prune(model, 0.85)
    files = {
        "dense": prunekit.save(model, root / "dense.safetensors", format="dense", masks=masks),
        "sparse": prunekit.save(model, root / "sparse.safetensors", format="sparse", masks=masks),
    }
    thin = prunekit.create_model("lenet_300_100", 4, (1, 8, 8))
    prune_channels(thin, 0.5, criterion="l1_filter")
    files["compact"] = prunekit.save(thin, root / "compact.safetensors", format="compact")
    return files


def split(data: bytes) -> tuple[dict, bytes]:
    """(header JSON, tensor bytes) of a safetensors file."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body
