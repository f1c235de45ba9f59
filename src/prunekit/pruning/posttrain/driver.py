"""Sequential post-training pruning, block by block: each block is calibrated on the outputs of the pruned blocks
before it.

Inside a block, `calibration` chooses the order. "block" (the default, as the reference implementations of Wanda
and SparseGPT do): one pass of the block over its calibration inputs accumulates the statistics of every layer in
it, all from the dense block, then every layer is pruned. "sequential": layer group by layer group (see
`blocks.stages`), each group calibrated from inputs that already pass through the pruned groups before it in the
same block (one pass per group). Either way, after its layers are pruned (and, for SparseGPT, their remaining
weights updated) the pruned block runs once more to make the next block's inputs, replacing this block's in place.
Memory: the hidden states of one block's inputs for the calibration batches, plus one batch's activations inside
the block, whatever the depth.

Covered layers outside the repeated blocks (none in a decoder whose head is not pruned) are pruned last, from
forward passes of the whole model; for a layer before the first block (an input projection, say) this means the
blocks were calibrated on its dense output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from prunekit.common.batches import DEFAULT, Batch, Objective
from prunekit.common.errors import UserError
from prunekit.pruning.masks import Masks, transposed_names
from prunekit.pruning.patterns import from_matrix, matrix
from prunekit.pruning.posttrain.blocks import Call, as_call, capture, find_blocks, next_call, stages
from prunekit.pruning.posttrain.layers import check_supported, input_rows, set_weight_matrix, weight_matrix
from prunekit.pruning.posttrain.target import LayerMethod, Statistics, Target


@contextmanager
def calibrating(model: nn.Module) -> Iterator[None]:
    """Eval mode, no autograd, and no key/value cache (Hugging Face models) while calibrating; restored after."""
    was_training = model.training
    config = getattr(model, "config", None)
    cache = getattr(config, "use_cache", None)
    model.eval()
    if cache:
        config.use_cache = False
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
        if cache:
            config.use_cache = cache


def prune_sequential(
    model: nn.Module,
    masks: Masks,
    batches: list[Batch],
    method: LayerMethod,
    targets: dict[str, Target],
    objective: Objective = DEFAULT,
    calibration: str = "block",
) -> Masks:
    """New masks for every tensor in `masks`; the model's weights are pruned (and updated) in place."""
    check_calibration(calibration)
    modules = {name: model.get_submodule(name.rpartition(".")[0]) for name in masks}
    for name, module in modules.items():
        check_supported(name, module)
    pruner = _LayerPruner(modules, dict(masks), method, targets, transposed_names(model), calibration)
    blocks = find_blocks(model, list(masks))
    done: set[str] = set()
    with calibrating(model):
        if blocks[0][1] is not model:
            calls = capture(model, *blocks[0], batches, objective)
            for index, (block_name, block) in enumerate(blocks):
                layers = [n for n in masks if n.startswith(block_name + ".")]
                pruner.run(block, calls, layers)
                done.update(layers)
                if index + 1 < len(blocks):
                    for i in range(len(calls)):  # replaced one by one (no loop variable keeps an old one alive)
                        calls[i] = next_call(calls[i], block(*calls[i][0], **calls[i][1]), block_name)
            del calls
        rest = [n for n in masks if n not in done]
        if rest:
            pruner.run(model, [as_call(objective.inputs(b)) for b in batches], rest)
    return {name: pruner.masks[name] for name in masks}


def prune_block(
    root: nn.Module,
    calls: list[Call],
    modules: dict[str, nn.Module],
    masks: Masks,
    method: LayerMethod,
    targets: dict[str, Target],
    transposed: frozenset[str],
    calibration: str = "block",
) -> Masks:
    """New masks for the layers `modules` of one block `root` (weights pruned in place) from its calibration `calls`:
    what `prune_sequential` does for each block, for a caller that holds one block at a time (prunekit.streaming)."""
    check_calibration(calibration)
    pruner = _LayerPruner(modules, dict(masks), method, targets, transposed, calibration)
    pruner.run(root, calls, list(modules))
    return {name: pruner.masks[name] for name in modules}


CALIBRATION = ("block", "sequential")


def check_calibration(calibration: str) -> None:
    if calibration not in CALIBRATION:
        raise UserError(f"calibration must be one of {', '.join(CALIBRATION)}, got {calibration!r}")


class _LayerPruner:
    def __init__(
        self,
        modules: dict[str, nn.Module],
        masks: Masks,
        method: LayerMethod,
        targets: dict[str, Target],
        transposed: frozenset[str],
        calibration: str = "block",
    ) -> None:
        self.modules, self.masks, self.method = modules, masks, method
        self.targets, self.transposed, self.calibration = targets, transposed, calibration

    def run(self, root: nn.Module, calls: list[Call], layers: list[str]) -> None:
        if not layers:
            return
        if self.calibration == "block":
            groups = [layers]  # every layer's statistics from one pass of the dense block
        else:
            groups = stages(root, calls[0], {n: self.modules[n] for n in layers})
        for group in groups:
            stats = self._collect(root, calls, group)
            silent = [name for name in group if not stats[name].tokens]
            if silent:
                raise UserError(f"layer {silent[0]} did not run on the calibration batches; add it to prune.ignore")
            for name in group:
                self._prune(name, stats[name])

    def _collect(self, root: nn.Module, calls: list[Call], group: list[str]) -> dict[str, Statistics]:
        layers = {name: self.modules[name] for name in group}
        return collect(root, calls, layers, lambda n: self.method.statistics(*inputs_and_device(layers[n])))

    def _prune(self, name: str, stats: Statistics) -> None:
        module, t = self.modules[name], name in self.transposed
        alive = matrix(self.masks[name], t).to(module.weight.device)
        current = weight_matrix(module)
        weight, mask = self.method.prune(current, stats, alive, self.targets[name], name)
        shared = current.untyped_storage().data_ptr() == module.weight.untyped_storage().data_ptr()
        if weight is current and shared:  # unchanged (Wanda), a view: zero the pruned weights in place, no copy
            current.mul_(mask)
        else:
            set_weight_matrix(module, weight * mask)
        self.masks[name] = from_matrix(mask, self.masks[name].shape, t).to(self.masks[name].device)


def inputs_and_device(module: nn.Module) -> tuple[int, str]:
    """The arguments of a method's `statistics`: the layer's input features and its weight's device."""
    weight = weight_matrix(module)
    return weight.shape[1], str(weight.device)


def collect(
    root: nn.Module, calls: list[Call], layers: dict[str, nn.Module], make: Callable[[str], Statistics]
) -> dict[str, Statistics]:
    """Each layer's statistics (`make(name)`, fed its input rows by a hook) over one pass of `root` on `calls`."""
    stats = {name: make(name) for name in layers}
    handles = [module.register_forward_hook(_accumulate(stats[name])) for name, module in layers.items()]
    try:
        for args, kwargs in calls:
            root(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return stats


def _accumulate(stats: Statistics) -> Any:
    def hook(module: nn.Module, inputs: tuple[Any, ...], _: Any) -> None:
        x = inputs[0]
        stats.add(input_rows(module, x), int(x.shape[0]) if x.dim() > 1 else 1)

    return hook
