"""OWL's outlier ratios measured streamed: one pass of the dense checkpoint, block by block, before any pruning.

Each block is read, the Wanda scores of its layers come from one pass over its dense calibration inputs (the
in-memory `posttrain.owl.block_scores`), its outlier ratio is kept, and its dense outputs become the next block's
inputs, as `posttrain.owl.block_outlier_ratios` does with the whole model in memory. The ratios are recorded in the
progress file, so a resumed prune does not measure them again. The hidden states of this pass stay in memory.
"""

from __future__ import annotations

from torch import nn

from prunekit.pruning.masks import dense_masks
from prunekit.pruning.posttrain.blocks import Call, next_call
from prunekit.pruning.posttrain.layers import check_supported
from prunekit.pruning.posttrain.owl import block_scores, outlier_ratio
from prunekit.streaming.checkpoint import Checkpoint, empty_tree, fill_tree


def outlier_ratios(
    model: nn.Module,
    blocks: list[tuple[str, nn.Module]],
    per_block: list[list[str]],
    ckpt: Checkpoint,
    calls: list[Call],
    transposed: frozenset[str],
    m: float,
) -> dict[str, float]:
    """Block name -> outlier ratio of its dense layers' Wanda scores (`calls` are consumed)."""
    ratios: dict[str, float] = {}
    for index, ((name, block), names) in enumerate(zip(blocks, per_block, strict=True)):
        fill_tree(block, f"{name}.", ckpt)
        layers = {n: model.get_submodule(n.rpartition(".")[0]) for n in names}
        for layer, module in layers.items():
            check_supported(layer, module)
        if layers:
            ratios[name] = outlier_ratio(block_scores(block, calls, layers, dense_masks(model, names), transposed), m)
        if index + 1 < len(blocks):
            for i in range(len(calls)):
                calls[i] = next_call(calls[i], block(*calls[i][0], **calls[i][1]), name)
        empty_tree(block)
    return ratios
