"""A model's repeated blocks, the calibration inputs of the first one, and the order of the layers inside a block.

Blocks are found generically: the children of the largest `nn.ModuleList` whose children all have one type and hold
prunable layers (a transformer's decoder layers: `transformer.h` in GPT-2, `model.layers` in LLaMA, `blocks` in
prunekit's GPT). A model without one is treated as a single block, the model itself.

A block is called as it is inside the model: the first block's arguments are captured once per calibration batch
(a pre-hook stops the forward there), and each later block gets the same arguments with the hidden state (the first
positional argument, or `hidden_states=`) replaced by the previous block's output (a tensor, or the first element of
a tuple). That holds for Hugging Face decoders and prunekit's GPT, which pass every layer the same mask and position
arguments. Only one block's hidden states are held at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from prunekit.common.batches import Batch, Objective
from prunekit.common.errors import UserError

Call = tuple[tuple[Any, ...], dict[str, Any]]


def find_blocks(model: nn.Module, names: list[str]) -> list[tuple[str, nn.Module]]:
    """(name, module) of each repeated block in order; [("", model)] when the model has none."""
    best: tuple[str, nn.ModuleList] | None = None
    for list_name, children in model.named_modules():
        if not isinstance(children, nn.ModuleList) or len(children) < 2 or len({type(c) for c in children}) > 1:
            continue
        prefix = f"{list_name}." if list_name else ""
        if any(n.startswith(prefix) for n in names) and (best is None or len(children) > len(best[1])):
            best = (prefix, children)
    if best is None:
        return [("", model)]
    return [(f"{best[0]}{i}", block) for i, block in enumerate(best[1])]


def as_call(inputs: Any) -> Call:
    """Model inputs as (args, kwargs), the way `prunekit.common.batches.call_model` passes them."""
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, tuple):
        return inputs, {}
    return (inputs,), {}


class _Reached(Exception):
    """Raised by the capture hook to stop the forward pass at the first block."""


def capture(model: nn.Module, name: str, block: nn.Module, batches: list[Batch], objective: Objective) -> list[Call]:
    """The arguments `block` receives for each calibration batch (the model runs only up to the block)."""
    calls: list[Call] = []

    def hook(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.append((args, kwargs))
        raise _Reached

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in batches:
            try:
                objective.forward(model, batch)
            except _Reached:
                continue
            raise UserError(f"block {name} did not run on a calibration batch: the model skips it")
    finally:
        handle.remove()
    return calls


def next_call(call: Call, output: Any, name: str) -> Call:
    """The next block's call: `call` with its hidden state replaced by this block's output."""
    hidden = output[0] if isinstance(output, tuple | list) and output else output
    if not isinstance(hidden, Tensor):
        raise UserError(f"block {name} returns a {type(output).__name__}: expected a tensor or a tuple led by one")
    args, kwargs = call
    if args:
        return (hidden, *args[1:]), kwargs
    if "hidden_states" in kwargs:
        return (), {**kwargs, "hidden_states": hidden}
    raise UserError(f"block {name} takes no positional argument nor hidden_states=: cannot chain its output")


def stages(root: nn.Module, call: Call, layers: dict[str, nn.Module]) -> list[list[str]]:
    """The layers in the order they first run, grouped where consecutive layers read the same input tensor (q, k
    and v of one attention; gate and up of a LLaMA MLP): each group is pruned together, after the groups before it."""
    seen: list[tuple[str, Tensor]] = []  # the inputs stay referenced, so `is` compares live tensors

    def recorder(name: str) -> Any:
        def hook(_: nn.Module, inputs: tuple[Any, ...], __: Any) -> None:
            if inputs and all(name != n for n, _ in seen):
                seen.append((name, inputs[0]))

        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in layers.items()]
    try:
        root(*call[0], **call[1])
    finally:
        for handle in handles:
            handle.remove()
    missing = [n for n in layers if all(n != s for s, _ in seen)]
    if missing:
        raise UserError(f"layer {missing[0]} did not run on the calibration batches; add it to prune.ignore")
    groups: list[list[str]] = []
    for i, (name, x) in enumerate(seen):
        if i and x is seen[i - 1][1]:
            groups[-1].append(name)
        else:
            groups.append([name])
    return groups
