"""Running a model for channel pruning: example inputs of any structure, every output tensor, named failures.

Example inputs are what the model is called on: a tensor (`model(x)`), a tuple (`model(*args)`) or a dict of
keyword inputs (`model(**kwargs)`). Outputs may be tensors, tuples, lists or dicts of them; `output_tensors`
flattens them in a fixed order, so "the output shapes did not change" compares every one of them.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import call_model, to_device
from prunekit.common.errors import UserError
from prunekit.common.safety import one_line


def example_inputs(model: nn.Module, example: Any) -> Any:
    """`example` on the model's device; default zeros of shape (1, *model.arch["input_shape"]) for zoo models."""
    device = model_device(model)
    if example is not None:
        return _no_cache(model, to_device(example, device))
    if callable(getattr(model, "example_input", None)):  # token ids for a language model (prunekit's gpt)
        return model.example_input(1).to(device)
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict) or "input_shape" not in arch:
        raise UserError(
            f"{type(model).__name__} has no arch.input_shape: pass example_inputs (a tensor, a tuple of "
            "positional inputs or a dict of keyword inputs) to trace it"
        )
    return torch.zeros(1, *arch["input_shape"], device=device)


def _no_cache(model: nn.Module, inputs: Any) -> Any:
    """Keyword inputs of a model whose forward takes `use_cache` (Hugging Face decoders) get use_cache=False unless
    they say otherwise: a key/value cache adds nothing to trace and concatenations the tracer cannot follow."""
    if not isinstance(inputs, Mapping) or "use_cache" in inputs:
        return inputs
    try:
        takes = "use_cache" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return inputs
    return {**inputs, "use_cache": False} if takes else inputs


def model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    raise UserError(f"{type(model).__name__} has no parameters: there are no channels to prune")


def output_tensors(out: Any, depth: int = 0) -> list[Tensor]:
    """Every tensor of a (nested) model output, dict entries in sorted key order."""
    if depth > 32:
        return []
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for key in sorted(out, key=str) for t in output_tensors(out[key], depth + 1)]
    if isinstance(out, list | tuple):
        return [t for value in out for t in output_tensors(value, depth + 1)]
    if hasattr(out, "__dataclass_fields__"):
        return [t for key in out.__dataclass_fields__ for t in output_tensors(getattr(out, key, None), depth + 1)]
    return []


def output_shapes(out: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in output_tensors(out)]


AFTER = "after channel pruning"


def run_named(model: nn.Module, inputs: Any, when: str) -> Any:
    """model(inputs); an exception becomes a UserError naming the innermost module that was running."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []

    def enter(module: nn.Module, _: object) -> None:
        stack.append(names.get(module, "?"))

    def leave(module: nn.Module, _: object, __: object) -> None:
        if stack:
            stack.pop()

    hooks = [m.register_forward_pre_hook(enter) for m in model.modules()]
    hooks += [m.register_forward_hook(leave) for m in model.modules()]
    try:
        return call_model(model, inputs)
    except UserError:  # already one line that says what to do (a dict of inputs the forward cannot take)
        raise
    except Exception as exc:  # any failure inside a user model; the user needs the module's name
        where = f"module {stack[-1]!r}" if stack and stack[-1] else f"{type(model).__name__}.forward"
        hint = "the layers feeding it lost channels it needs" if when == AFTER else "add that module to ignore"
        if isinstance(inputs, Mapping) and isinstance(exc, TypeError) and not any(stack):  # failed calling forward
            hint = (
                "a dict of inputs is passed as keyword arguments (model(**inputs)); for a forward that takes the "
                "dict as one argument, pass it in a tuple: example_inputs=(inputs,)"
            )
        error = UserError(f"channel pruning: {type(model).__name__} fails {when} in {where}: {one_line(exc)}; {hint}")
        error.module = stack[-1] if stack else ""  # type: ignore[attr-defined]  (where blame looks first)
        raise error from exc
    finally:
        for h in hooks:
            h.remove()


@contextlib.contextmanager
def mode(model: nn.Module, train: bool) -> Iterator[None]:
    """The whole model in train or eval mode; every module's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def graph_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, autograd on and every floating parameter requiring grad (so frozen layers leave graph nodes), the
    RNG untouched; everything restored afterwards."""
    rng = torch.random.fork_rng(devices=_devices(model))
    with rng, torch.enable_grad(), mode(model, train=False), all_trainable(model):
        yield


@contextlib.contextmanager
def all_trainable(model: nn.Module) -> Iterator[None]:
    """Every floating parameter requires grad (frozen layers too: tracing, Taylor scores); flags restored after."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
