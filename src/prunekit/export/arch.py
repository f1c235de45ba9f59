"""Architecture records read from files (model files, run directories): checked before any memory is allocated.

A file says which registered model rebuilds it (`{"name", "num_classes", "input_shape"}`, plus the size options of a
builder that takes them, such as gpt's n_layer, n_head, n_embd: integers in [1, 65,536]). Trusting it blindly
lets a 1 MB file ask for a network with millions of classes. So the record is checked against sane bounds, the
network is first built on PyTorch's meta device (shapes only, no memory), its tensors compared with the file's
tensor table, and its dense size held to a budget that grows with the file's own size, all before the real build.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, short
from prunekit.config import MAX_CLASSES, MAX_EXAMPLE_VALUES

MODEL_BYTES_FLOOR = 96 * 2**20  # any file may decode to this much (a load costs about 2.3x: under 300 MB)
MODEL_BYTES_PER_FILE_BYTE = 64  # beyond the floor: 64x the file's size (a 98%-sparse file of a large network)
LIMIT_VARIABLE = "PRUNEKIT_MAX_MODEL_BYTES"  # raises the budget for the command line (max_bytes= in Python)
RAISE_HINT = f"if the file is genuine, load it with prunekit.load(path, max_bytes=...) or set {LIMIT_VARIABLE}"
ARCH_KEYS = ("name", "num_classes", "input_shape")


def checked_arch(arch: Any, source: str | os.PathLike[str]) -> dict[str, Any]:
    """The keyword arguments of `create_model` from a file's architecture record, or a one-line UserError."""
    from prunekit.models import MODELS

    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise UserError(f"{source} does not record its architecture; pass builder= to rebuild the model")
    name = arch["name"]
    try:
        builder = MODELS.get(clip(name, 100))
    except UserError as exc:
        raise UserError(f"{source}: cannot rebuild its architecture: {exc}") from None
    accepted = list(inspect.signature(builder).parameters)[2:]  # after (num_classes, input_shape)
    unknown = [k for k in arch if k not in ARCH_KEYS and k not in accepted]
    if unknown:
        raise UserError(f"{source} has an architecture record with unknown field {clip(str(unknown[0]), 40)!r}")
    options = {k: v for k, v in arch.items() if k not in ARCH_KEYS}
    for key, value in options.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65_536):
            raise UserError(f"{source}: architecture option {key} = {short(value, 30)} is outside 1-65,536")
    rank = getattr(builder, "input_rank", 3)
    classes, shape = arch.get("num_classes", 10), arch.get("input_shape", [1, 28, 28])
    if not (isinstance(classes, int) and not isinstance(classes, bool) and 1 <= classes <= MAX_CLASSES):
        raise UserError(f"{source}: num_classes {short(classes, 30)} is outside 1-{MAX_CLASSES:,}; the file is damaged")
    if not (
        isinstance(shape, list | tuple)
        and len(shape) == rank
        and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 65_536 for d in shape)
        and math.prod(shape) <= MAX_EXAMPLE_VALUES
    ):
        raise UserError(
            f"{source}: input_shape {short(shape, 40)} is not {'[C, H, W]' if rank == 3 else '[T]'} with at most "
            f"{MAX_EXAMPLE_VALUES:,} values; the file is damaged"
        )
    return {"name": name, "num_classes": classes, "input_shape": tuple(shape), **options}


def _user_model(arch: Any, source: str | os.PathLike[str]) -> nn.Module | None:
    """A user's model (`package.module:factory`, rebuilt only if its module was named with --import/imports=), on
    the current default device; None when `arch` names a zoo model."""
    from prunekit.common import user_code

    if not (isinstance(arch, dict) and user_code.is_ref(arch.get("name"))):
        return None
    from prunekit.config import check_free_form

    args = arch.get("args") or {}
    check_free_form(args, f"{source}: arch.args")
    return user_code.build_model(arch["name"], args, arch.get("example"), source=str(source))


def meta_model(arch: Any, source: str | os.PathLike[str]) -> nn.Module:
    """The recorded architecture on the meta device: every shape, no memory."""
    from prunekit.models import create_model

    with torch.device("meta"):
        user = _user_model(arch, source)
    if user is not None:
        return user
    kwargs = checked_arch(arch, source)
    try:
        with torch.device("meta"):
            return create_model(**kwargs)
    except (UserError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{source}: cannot rebuild its architecture: {clip(str(exc), 120)}") from None


def check_forward(model: nn.Module, input_shape: Any, source: str | os.PathLike[str]) -> None:
    """Refuse a (meta) network that cannot run on its recorded input shape, e.g. narrowed to inconsistent widths."""
    device = next((t.device for t in model.state_dict().values()), torch.device("meta"))
    try:
        with torch.no_grad():
            make = getattr(model, "example_input", None)  # token ids for a language model
            model.eval()(make(1) if callable(make) else torch.zeros(1, *input_shape, device=device))
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise UserError(
            f"{source}: the network it describes cannot run on its input shape {list(input_shape)} "
            f"({clip(str(exc), 100)}); the file is damaged"
        ) from None


def state_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def budget(file_bytes: int) -> int:
    return max(MODEL_BYTES_FLOOR, MODEL_BYTES_PER_FILE_BYTE * file_bytes)


def limit(source: str | os.PathLike[str], max_bytes: int | None = None) -> int:
    """`max_bytes`, else the environment's PRUNEKIT_MAX_MODEL_BYTES, else the budget of `source`'s size."""
    if max_bytes is not None:
        return max_bytes
    if os.environ.get(LIMIT_VARIABLE):
        text = os.environ[LIMIT_VARIABLE]
        if not (text.isascii() and text.isdigit() and len(text) <= 18):
            raise UserError(f"{LIMIT_VARIABLE}={clip(text, 30)!r} is not a number of bytes")
        return int(text)
    return budget(Path(source).stat().st_size if Path(source).is_file() else 0)


def check_budget(model: nn.Module, source: str | os.PathLike[str], max_bytes: int | None = None) -> None:
    """Refuse to build `model` (a meta model) when it is larger than `max_bytes` or the budget of `source`'s size."""
    size = Path(source).stat().st_size if Path(source).is_file() else 0
    allowed = limit(source, max_bytes)
    needed = state_bytes(model)
    if needed > allowed:
        raise UserError(
            f"{source} would rebuild a network of {needed / 2**20:,.0f} MiB from a file of {size / 2**20:,.1f} MiB, "
            f"more than the {allowed / 2**20:,.0f} MiB allowed; {RAISE_HINT}"
        )


def build(arch: Any, source: str | os.PathLike[str], max_bytes: int | None = None) -> nn.Module:
    """The recorded architecture, built for real once its meta twin passed the bounds and the budget."""
    from prunekit.models import create_model

    check_budget(meta_model(arch, source), source, max_bytes)
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the global RNG untouched
        user = _user_model(arch, source)
        return user if user is not None else create_model(**checked_arch(arch, source))


def build_with(builder: Callable[..., nn.Module], arch: Any) -> nn.Module:
    """`builder(arch)` when the builder takes a required argument, else `builder()` (a user's model factory, such as
    the class of the network)."""
    model = builder(arch) if _takes_argument(builder) else builder()
    if not isinstance(model, nn.Module):
        raise UserError(f"builder returned a {type(model).__name__}, not an nn.Module")
    return model


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: the documented builder(arch) form
        return True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in kinds and p.default is inspect.Parameter.empty for p in params)
