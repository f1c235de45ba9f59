"""The calibration inputs of the first block of a checkpoint's model, with only what runs before it read from disk.

Every module outside the blocks gets a forward pre-hook that reads its own tensors the first time it is called; the
capture of `posttrain.blocks` stops the forward at the first block, so the embedding (and a rotary table, an input
norm, whatever precedes the blocks) is all that is ever read, and it is emptied again afterwards. A model that uses a
weight before block 0 without calling its module (so it stays on the meta device) is refused with its name.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from prunekit.common.batches import Batch, Objective
from prunekit.common.errors import UserError
from prunekit.pruning.posttrain.blocks import Call, capture
from prunekit.streaming.checkpoint import Checkpoint, empty_tree, fill


def first_block_calls(
    model: nn.Module, blocks: list[tuple[str, nn.Module]], ckpt: Checkpoint, batches: list[Batch], objective: Objective
) -> list[Call]:
    inside = {id(m) for _, block in blocks for m in block.modules()}
    outside = [(name, m) for name, m in model.named_modules() if id(m) not in inside]
    handles = [m.register_forward_pre_hook(_reader(m, f"{name}." if name else "", ckpt)) for name, m in outside]
    try:
        calls = capture(model, *blocks[0], batches, objective)
    finally:
        for handle in handles:
            handle.remove()
        for _, module in outside:
            empty_tree(module, recurse=False)
    for args, kwargs in calls:
        for value in [*args, *kwargs.values()]:
            for tensor in _tensors(value):
                if tensor.is_meta:
                    raise UserError(
                        "the model uses weights before its first block without calling their module: "
                        "it cannot be pruned from a checkpoint block by block"
                    )
    return calls


def _reader(module: nn.Module, prefix: str, ckpt: Checkpoint) -> Any:
    def hook(*_: Any) -> None:
        fill(module, prefix, ckpt)

    return hook


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def hidden_of(call: Call) -> Tensor:
    """The hidden state a block call carries (first positional argument, or `hidden_states=`)."""
    args, kwargs = call
    return args[0] if args else kwargs["hidden_states"]


def with_hidden(call: Call, hidden: Tensor) -> Call:
    args, kwargs = call
    if args:
        return (hidden, *args[1:]), kwargs
    return (), {**kwargs, "hidden_states": hidden}
