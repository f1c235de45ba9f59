"""Sequential post-training pruning: block by block, and inside a block layer group by layer group, each layer
pruned from inputs that already pass through the pruned layers below it.

For each block: capture (once) or carry over its calibration inputs; for each group of layers (see
`blocks.stages`), run the block over every calibration input while hooks accumulate each layer's statistics, then
let the method prune the layer (and, for SparseGPT, update its remaining weights); finally run the pruned block once
more to make the next block's inputs, replacing this block's in place. Memory: the hidden states of one block's
inputs for the calibration batches, plus one batch's activations inside the block, whatever the depth.

Covered layers outside the repeated blocks (none in a decoder whose head is not pruned) are pruned last, from
forward passes of the whole model; for a layer before the first block (an input projection, say) this means the
blocks were calibrated on its dense output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from prunekit.common.batches import DEFAULT, Batch, Objective
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
) -> Masks:
    """New masks for every tensor in `masks`; the model's weights are pruned (and updated) in place."""
    modules = {name: model.get_submodule(name.rpartition(".")[0]) for name in masks}
    for name, module in modules.items():
        check_supported(name, module)
    pruner = _LayerPruner(modules, dict(masks), method, targets, transposed_names(model))
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


class _LayerPruner:
    def __init__(
        self,
        modules: dict[str, nn.Module],
        masks: Masks,
        method: LayerMethod,
        targets: dict[str, Target],
        transposed: frozenset[str],
    ) -> None:
        self.modules, self.masks, self.method = modules, masks, method
        self.targets, self.transposed = targets, transposed

    def run(self, root: nn.Module, calls: list[Call], layers: list[str]) -> None:
        if not layers:
            return
        for group in stages(root, calls[0], {n: self.modules[n] for n in layers}):
            stats = self._collect(root, calls, group)
            for name in group:
                self._prune(name, stats[name])

    def _collect(self, root: nn.Module, calls: list[Call], group: list[str]) -> dict[str, Statistics]:
        stats: dict[str, Statistics] = {}
        handles = []
        for name in group:
            module = self.modules[name]
            weight = weight_matrix(module)
            stats[name] = self.method.statistics(weight.shape[1], str(weight.device))
            handles.append(module.register_forward_hook(_accumulate(stats[name])))
        try:
            for args, kwargs in calls:
                root(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()
        return stats

    def _prune(self, name: str, stats: Statistics) -> None:
        module, t = self.modules[name], name in self.transposed
        alive = matrix(self.masks[name], t).to(module.weight.device)
        weight, mask = self.method.prune(weight_matrix(module), stats, alive, self.targets[name], name)
        set_weight_matrix(module, weight * mask)
        self.masks[name] = from_matrix(mask, self.masks[name].shape, t).to(self.masks[name].device)


def _accumulate(stats: Statistics) -> Any:
    def hook(module: nn.Module, inputs: tuple[Any, ...], _: Any) -> None:
        stats.add(input_rows(module, inputs[0]))

    return hook
