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
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, parse_json
from prunekit.common.safety import atomic_write_bytes, one_line, require_safetensors
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
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _damaged(path, one_line(e)) from None
    meta = _metadata(path, data[8 : 8 + int.from_bytes(data[:8], "little")])
    record = _json_object(path, meta.get("record"), "record")
    numbers = _json_object(path, meta.get("optimizer_numbers", "{}"), "optimizer numbers")
    state = {k.removeprefix("state::"): v for k, v in tensors.items() if k.startswith("state::")}
    masks = {k.removeprefix(MASK): v for k, v in tensors.items() if k.startswith(MASK)}
    opt: dict[str, Tensor | Any] = {k.removeprefix(OPT): v for k, v in tensors.items() if k.startswith(OPT)}
    return state, masks, record, opt | numbers


def read_record(path: Path) -> dict[str, Any]:
    """The JSON record of a checkpoint, read from its header alone."""
    require_safetensors(path)
    try:
        with open(path, "rb") as f:
            header = f.read(int.from_bytes(f.read(8), "little"))
    except OSError as e:
        raise _damaged(path, e.strerror or str(e)) from None
    return _json_object(path, _metadata(path, header).get("record"), "record")


def _damaged(path: Path, why: str) -> UserError:
    return UserError(f"checkpoint {path} is damaged ({clip(why, 100)}); delete it to recompute that round")


def _metadata(path: Path, header: bytes) -> dict[str, Any]:
    """The string metadata of a safetensors header (already bounded in size by require_safetensors)."""
    try:
        meta = parse_json(header.decode("utf-8"), str(path)).get("__metadata__")
    except (UserError, UnicodeDecodeError, AttributeError) as e:
        raise _damaged(path, f"unreadable header: {e}") from None
    if not isinstance(meta, dict):
        raise _damaged(path, "no metadata in its header")
    return meta


def _json_object(path: Path, text: Any, what: str) -> dict[str, Any]:
    """A JSON object stored as a metadata string (the round record, the optimizer's numbers)."""
    if not isinstance(text, str):
        raise _damaged(path, f"no {what}")
    try:
        value = parse_json(text, f"{what} of {path}", allow_nan=True)
    except UserError as e:
        raise _damaged(path, f"{what}: {e}") from None
    if not isinstance(value, dict):
        raise _damaged(path, f"its {what} is not a JSON object")
    return value


def restore_optimizer(
    optimizer: torch.optim.Optimizer, entries: dict[str, Any], source: object = "a checkpoint"
) -> None:
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, value in entries.items():
            idx, name = key.split("::", 1)
            state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise UserError(f"the optimizer state in {source} is damaged ({clip(str(e), 80)}); delete that file") from None


def load_weights(model: nn.Module, state: dict[str, Tensor], source: object) -> None:
    """`model.load_state_dict(state)`, a mismatch being a damaged file (named) rather than a bug."""
    expected = model.state_dict()
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape] + [
        k for k in state if k not in expected
    ]
    if wrong:
        raise UserError(f"{source} is damaged: tensor {clip(wrong[0], 60)!r} does not fit the network; delete it")
    model.load_state_dict(state)
