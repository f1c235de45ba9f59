"""One example of a model's inputs, described by shapes and dtypes (JSON, recorded in `arch`), and rebuilt as zeros.

A user model has no zoo input shape, so a run or file records the structure of its inputs instead:
`{"shape": [1, 3, 32, 32], "dtype": "float32"}` for a tensor, `{"dict": {name: spec}}` for keyword inputs,
`{"tuple": [spec, ...]}` for positional ones. FLOP counts and tracing of a rebuilt model run on zeros of that
structure (zero token ids are valid ids). Specs read from files are bounded before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from prunekit.common.errors import UserError

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
MAX_DEPTH, MAX_ENTRIES, MAX_NUMEL = 8, 64, 50_000_000


def spec_of(example: Any, depth: int = 0) -> dict[str, Any] | None:
    """The spec of one example of inputs (None when some part is not a tensor, tuple, list or mapping)."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(example, Tensor):
        dtype = str(example.dtype).removeprefix("torch.")
        return {"shape": list(example.shape), "dtype": dtype} if dtype in DTYPES else None
    if isinstance(example, Mapping):
        parts = {str(k): spec_of(v, depth + 1) for k, v in example.items()}
        return None if any(v is None for v in parts.values()) else {"dict": parts}
    if isinstance(example, tuple | list):
        items = [spec_of(v, depth + 1) for v in example]
        return None if any(v is None for v in items) else {"tuple": items}
    return None


def zeros(spec: Any, device: torch.device | str = "cpu", source: str = "the recorded example") -> Any:
    """Zeros of the structure `spec` describes; a malformed or oversized spec is a one-line UserError."""
    budget = [MAX_ENTRIES, MAX_NUMEL]

    def build(node: Any, depth: int) -> Any:
        budget[0] -= 1
        if depth > MAX_DEPTH or budget[0] < 0 or not isinstance(node, dict):
            raise UserError(f"{source}: input example spec is malformed or too large")
        if "shape" in node:
            shape, dtype = node.get("shape"), node.get("dtype")
            ok = isinstance(shape, list) and len(shape) <= 8
            ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            if not ok or dtype not in DTYPES:
                raise UserError(f"{source}: input example spec has a bad shape or dtype: {shape!r} {dtype!r}")
            budget[1] -= math.prod(shape)
            if budget[1] < 0:
                raise UserError(f"{source}: input example spec is larger than {MAX_NUMEL:,} values")
            return torch.zeros(shape, dtype=getattr(torch, dtype), device=device)
        if isinstance(node.get("dict"), dict):
            return {str(k): build(v, depth + 1) for k, v in node["dict"].items()}
        if isinstance(node.get("tuple"), list):
            return tuple(build(v, depth + 1) for v in node["tuple"])
        raise UserError(f"{source}: input example spec is malformed")

    return build(spec, 0)


def arch_example(arch: Any, source: str = "the architecture") -> Any:
    """What FLOPs and tracing run on for a recorded architecture: the zoo's input shape, else zeros of its example."""
    if isinstance(arch, dict) and arch.get("input_shape"):
        return tuple(int(d) for d in arch["input_shape"])
    if isinstance(arch, dict) and arch.get("example") is not None:
        return zeros(arch["example"], source=source)
    raise UserError(f"{source} records no input shape or example inputs, so FLOPs cannot be counted")
