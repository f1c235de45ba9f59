"""The output layer of any module: the layers whose outputs are the model's outputs, which pruning leaves alone.

`output_layers(model, example_inputs)` decides, in this order:
1. declared: a zoo model names its classifier (`model.output_layer`); a Hugging Face-style model its
   `get_output_embeddings()` module.
2. traced: one forward pass on `example_inputs` (eval mode, the RNG and every requires_grad restored after), then a
   walk of the autograd graph back from every tensor the model returns (tensors, tuples, lists, dicts) to the first
   layers reached, without passing through another layer. Layers are the modules a coverage rule names
   (Conv, ConvTranspose, Linear, MultiheadAttention, LSTM/GRU/RNN, Embedding); a covered weight read directly by a
   functional call (`F.linear(x, self.head.weight)`) counts for the module that owns it. A model with two heads
   has two output layers; an autoencoder returning (reconstruction, code) has the layers of both.
3. fallback, without example inputs: the last such layer in registration order (`named_modules()`), which is the
   head of most networks written top to bottom, but not of one with several heads; the result says which rule
   decided, and `prunekit.prune` repeats it in its report.
Channel pruning uses the same function to keep the output width.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from prunekit.common.batches import call_model
from prunekit.common.errors import UserError
from prunekit.common.safety import one_line
from prunekit.pruning.coverage import candidates

DECLARED, TRACED, FALLBACK = "declared", "traced", "fallback"


@dataclass(frozen=True)
class OutputLayers:
    """Module names of the output layers and how they were found (DECLARED, TRACED or FALLBACK)."""

    modules: tuple[str, ...]
    how: str

    def describe(self) -> str:
        names = ", ".join(self.modules) or "none"
        return {
            DECLARED: f"output layer {names} (declared by the model)",
            TRACED: f"output layer {names} (traced back from the model's outputs on example inputs)",
            FALLBACK: f"output layer {names} (no example inputs: the last layer in registration order; "
            "pass example_inputs or batches to trace the real output layers)",
        }[self.how]


def declared(model: nn.Module) -> tuple[str, ...] | None:
    layer = getattr(model, "output_layer", None)
    if isinstance(layer, str):
        return (layer,)
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Module):
        found = tuple(n for n, m in model.named_modules() if m is head)
        return found or None
    return None


def output_layers(model: nn.Module, example_inputs: Any = None) -> OutputLayers:
    """The layers whose outputs are `model`'s outputs (see the module docstring)."""
    named = declared(model)
    if named is not None:
        return OutputLayers(named, DECLARED)
    layers = _layers(model)
    if example_inputs is None:
        return OutputLayers(layers[-1:], FALLBACK)
    return OutputLayers(_trace(model, set(layers), example_inputs), TRACED)


def _layers(model: nn.Module) -> tuple[str, ...]:
    """Modules a coverage rule names, in registration order."""
    names = {u.module for c in candidates(model) for u in c.uses}
    return tuple(n for n, _ in model.named_modules() if n in names)


def _tensors(value: Any, depth: int = 0) -> Iterator[Tensor]:
    """Every tensor in a (nested) output: tensors, tuples, lists, dicts, and dataclass-like objects' fields."""
    if depth > 32:
        return
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v, depth + 1)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _tensors(getattr(value, name, None), depth + 1)


def _trace(model: nn.Module, layers: set[str], example_inputs: Any) -> tuple[str, ...]:
    nodes: dict[Any, str] = {}

    def hook(name: str) -> Any:
        def record(_: nn.Module, __: Any, out: Any) -> None:
            for t in _tensors(out):
                if t.grad_fn is not None:
                    nodes.setdefault(t.grad_fn, name)

        return record

    from prunekit.pruning.structured.inputs import graph_mode  # here: the structured package imports this module

    owners = {id(c.param): c.uses[0].module for c in candidates(model)}
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n in layers]
    try:
        with graph_mode(model):
            try:
                out = call_model(model, example_inputs)
            except Exception as exc:  # the user's forward: any error means the inputs do not fit
                raise UserError(
                    f"cannot trace the output layer: the model fails on the example inputs ({type(exc).__name__}: "
                    f"{one_line(exc)}); pass example_inputs the model accepts"
                ) from None
            found = _walk([t.grad_fn for t in _tensors(out) if t.grad_fn is not None], nodes, owners)
    finally:
        for h in handles:
            h.remove()
    order = [n for n, _ in model.named_modules()]
    return tuple(sorted(found, key=order.index))


def _walk(starts: list[Any], nodes: dict[Any, str], owners: dict[int, str]) -> set[str]:
    """Layers first reached walking back from `starts`; the walk stops at each layer's output node."""
    found: set[str] = set()
    seen: set[Any] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in nodes:
            found.add(nodes[node])
            continue
        variable = getattr(node, "variable", None)  # AccumulateGrad: a parameter read directly
        if isinstance(variable, Tensor):
            if id(variable) in owners:
                found.add(owners[id(variable)])
            continue
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found
