"""The output layers of any module: the layers whose outputs are the model's outputs; channel pruning keeps their width.

Declared first: a zoo model names its classifier (`model.output_layer`), a Hugging Face-style model its
`get_output_embeddings()`. Otherwise one forward pass on example inputs (eval mode, the RNG and every
requires_grad restored afterwards), then a walk of the autograd graph back from every tensor the model returns
to the first layers reached without passing through another layer. A model with two heads has two output layers;
an autoencoder returning (reconstruction, code) has the layers of both. A layer whose weight is read directly
by a functional call (`F.linear(x, self.head.weight)`) counts as reached.

`output_layers(model, example_inputs) -> OutputLayers` has the signature of the shared unstructured-pruning
function, so one implementation can replace the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from prunekit.pruning.structured.inputs import graph_mode, output_tensors, run_named

LAYER_TYPES = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.Embedding,
    nn.MultiheadAttention,
    nn.RNNBase,
)
DECLARED, TRACED = "declared", "traced"


@dataclass(frozen=True)
class OutputLayers:
    """Module names of the output layers and how they were found (DECLARED or TRACED)."""

    modules: tuple[str, ...]
    how: str


def output_layers(model: nn.Module, example_inputs: Any) -> OutputLayers:
    named = _declared(model)
    if named is not None:
        return OutputLayers(named, DECLARED)
    return OutputLayers(_traced(model, example_inputs), TRACED)


def _declared(model: nn.Module) -> tuple[str, ...] | None:
    layer = getattr(model, "output_layer", None)
    if isinstance(layer, str):
        return (layer,)
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Module):
        return tuple(n for n, m in model.named_modules() if m is head) or None
    return None


def _traced(model: nn.Module, inputs: Any) -> tuple[str, ...]:
    layers = {n: m for n, m in model.named_modules() if isinstance(m, LAYER_TYPES) and not _inside_layer(n, model)}
    nodes: dict[Any, str] = {}

    def hook(name: str) -> Any:
        def record(_: nn.Module, __: Any, out: Any) -> None:
            for t in output_tensors(out):
                if t.grad_fn is not None:
                    nodes.setdefault(t.grad_fn, name)

        return record

    owners = {id(p): name for name, m in layers.items() for p in m.parameters()}
    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    try:
        with graph_mode(model):
            out = run_named(model, inputs, "while finding its output layers")
            found = _walk([t.grad_fn for t in output_tensors(out) if t.grad_fn is not None], nodes, owners)
    finally:
        for h in handles:
            h.remove()
    return tuple(n for n in layers if n in found)


def _inside_layer(name: str, model: nn.Module) -> bool:
    """A layer inside another layer (MultiheadAttention's out_proj) is not an output layer of its own."""
    parts = name.split(".")
    return any(isinstance(model.get_submodule(".".join(parts[:i])), LAYER_TYPES) for i in range(1, len(parts)))


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
