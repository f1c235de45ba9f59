"""Run checkpoints: weights, masks, optimizer state and a JSON record in one safetensors file, written atomically.

These are the runner's own files (resume and export read them); model files for users live in prunekit.export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from prunekit.errors import UserError
from prunekit.export.safety import atomic_write_bytes, require_safetensors
from prunekit.pruning.masks import Masks

MASK, OPT = "mask::", "opt::"


def save(
    path: Path,
    state: dict[str, Tensor],
    masks: Masks,
    record: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
) -> None:
    """One checkpoint file: a model state dict, masks, a JSON record and optionally `optimizer.state_dict()`."""
    tensors = {f"state::{k}": v.detach().cpu().contiguous().clone() for k, v in state.items()}
    tensors |= {MASK + k: m.cpu().contiguous() for k, m in masks.items()}
    numbers: dict[str, Any] = {}
    if optimizer_state is not None:
        for idx, entry in optimizer_state["state"].items():
            for key, value in entry.items():
                if isinstance(value, Tensor):
                    tensors[f"{OPT}{idx}::{key}"] = value.detach().cpu().contiguous().clone()
                else:
                    numbers[f"{idx}::{key}"] = value
    meta = {"record": json.dumps(record), "optimizer_numbers": json.dumps(numbers)}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def load(path: Path) -> tuple[dict[str, Tensor], Masks, dict[str, Any], dict[str, Tensor | Any]]:
    """(model state, masks, record, optimizer entries) from a checkpoint; a damaged file is a UserError."""
    require_safetensors(path)
    try:
        data = path.read_bytes()
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
        record = json.loads(meta["record"])
        numbers = json.loads(meta.get("optimizer_numbers", "{}"))
    except (SafetensorError, KeyError, ValueError) as e:
        raise UserError(f"checkpoint {path} is damaged ({e}); delete it to recompute that round") from None
    state = {k.removeprefix("state::"): v for k, v in tensors.items() if k.startswith("state::")}
    masks = {k.removeprefix(MASK): v for k, v in tensors.items() if k.startswith(MASK)}
    opt: dict[str, Tensor | Any] = {k.removeprefix(OPT): v for k, v in tensors.items() if k.startswith(OPT)}
    return state, masks, record, opt | numbers


def read_record(path: Path) -> dict[str, Any]:
    """The JSON record of a checkpoint, read from its header alone."""
    require_safetensors(path)
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        return json.loads(header["__metadata__"]["record"])
    except (KeyError, ValueError) as e:
        raise UserError(f"checkpoint {path} is damaged ({e}); delete it to recompute that round") from None


def restore_optimizer(optimizer: torch.optim.Optimizer, entries: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in entries.items():
        idx, name = key.split("::", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
