"""The few collectives a distributed run needs, each a no-op for one process.

Objects cross process boundaries as safetensors bytes with a JSON skeleton (never pickle): rank 0 reads a file or
makes a decision, `share` sends the result (tensors, dicts, lists, numbers, strings) to every rank, and an error on
rank 0 is raised on every rank, so no rank waits forever for a partner that already failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.distributed.world import World

T = TypeVar("T")
_TENSOR = "\x00tensor"


class MirroredError(UserError):
    """Rank 0's bad-input error, raised on the other ranks too (the CLI prints it once, on rank 0)."""


def _flatten(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {_TENSOR: key}
    if isinstance(obj, Mapping):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("only string-keyed mappings cross between ranks")
        return {k: _flatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_flatten(v, tensors) for v in obj]
    return obj


def _restore(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        return {k: _restore(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore(v, tensors) for v in obj]
    return obj


def pack(obj: Any) -> bytes:
    """Tensors, string-keyed dicts, lists and JSON scalars as bytes (tuples come back as lists)."""
    tensors: dict[str, Tensor] = {}
    tree = _flatten(obj, tensors)
    return st_save(tensors, metadata={"tree": json.dumps(tree)})


def unpack(data: bytes) -> Any:
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return _restore(json.loads(header["__metadata__"]["tree"]), st_load(data))


def broadcast_bytes(data: bytes | None, world: World) -> bytes:
    """Rank 0's bytes on every rank."""
    size = torch.tensor([len(data) if world.main and data else 0], dtype=torch.int64, device=world.device)
    dist.broadcast(size, 0)
    if world.main:
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(world.device)
    else:
        buf = torch.empty(int(size.item()), dtype=torch.uint8, device=world.device)
    dist.broadcast(buf, 0)
    return data if world.main else bytes(buf.cpu().numpy())


def share(fn: Callable[[], T], world: World) -> T:
    """fn() evaluated on rank 0 and its result given to every rank; rank 0's exception is raised everywhere."""
    if not world.distributed:
        return fn()
    if world.main:
        try:
            value = fn()
        except UserError as e:
            broadcast_bytes(pack({"error": str(e), "user": True}), world)
            raise
        except Exception as e:
            broadcast_bytes(pack({"error": f"{type(e).__name__}: {e}", "user": False}), world)
            raise
        broadcast_bytes(pack({"value": value}), world)
        return value
    message = unpack(broadcast_bytes(None, world))
    if "error" in message:
        if message["user"]:
            raise MirroredError(message["error"])
        raise RuntimeError(f"rank 0 failed: {message['error']}")
    return message["value"]


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sums over all ranks, in float64 (exact for counts)."""
    if not world.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()


def digest(tensors: Mapping[str, Tensor]) -> bytes:
    """SHA-256 over names, dtypes, shapes and bytes: equal only for bit-identical tensors."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


def check_same(tensors: Mapping[str, Tensor], what: str, world: World) -> None:
    """Raise on every rank unless all ranks hold bit-identical `tensors` (all-reduced MIN and MAX of a checksum)."""
    if not world.distributed:
        return
    words = torch.tensor(
        [int.from_bytes(digest(tensors)[i : i + 8], "little", signed=True) for i in range(0, 32, 8)],
        dtype=torch.int64,
        device=world.device,
    )
    low, high = words.clone(), words.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError(
            f"the {world.size} ranks disagree on {what} (checksums differ): the processes went out of step; "
            "rerun resumes from the last checkpoint"
        )


def check_model(model: torch.nn.Module, masks: Mapping[str, Tensor], what: str, world: World) -> None:
    """`check_same` over a model's state (shapes included: the architecture) and its masks."""
    if world.distributed:
        check_same({**model.state_dict(), **{f"mask::{k}": v for k, v in masks.items()}}, what, world)
