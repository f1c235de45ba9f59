"""OWL (Yin et al. 2024, "Outlier Weighed Layerwise sparsity"): a sparsity per block from its outlier ratio.

One pass of the dense model over the calibration batches, block by block (each block fed the previous dense
block's outputs, as the reference implementation does), gives every prunable layer of a block its Wanda scores
|W_ij| * ||X_j||_2. A block's outlier ratio D is the fraction of all its layers' scores (concatenated) above M times
their mean (M = 5 by default). The ratios are scaled to [0, 2 lambda] by min-max normalisation, and a block's
density is that value minus the mean plus (1 - target) (lambda = 0.08 by default): blocks with more outliers keep
more weights, and the densities average to 1 - target. The mean is weighted by each block's prunable weights
(equal to the paper's plain mean when, as in a decoder, every block has the same size). A block with a density
outside [0, 1] is clamped there and the others re-solved, so the total stays exact.

Every layer of a block is then pruned to the block's sparsity by Wanda or SparseGPT, within its rows as usual.
Layers outside the repeated blocks keep the uniform target.
"""

from __future__ import annotations

import torch
from torch import nn

from prunekit.batches import Batch, Objective
from prunekit.errors import UserError
from prunekit.pruning.masks import Masks, transposed_names
from prunekit.pruning.patterns import matrix
from prunekit.pruning.posttrain.blocks import capture, find_blocks, next_call
from prunekit.pruning.posttrain.driver import calibrating, collect, inputs_and_device
from prunekit.pruning.posttrain.layers import check_supported, weight_matrix
from prunekit.pruning.posttrain.target import Target
from prunekit.pruning.posttrain.wanda import ColumnNorms

OWL_DEFAULTS = (5.0, 0.08)  # the paper's M and lambda


def outlier_ratio(scores: torch.Tensor, m: float) -> float:
    """The fraction of `scores` above m times their mean."""
    return float((scores > m * scores.mean()).double().mean())


def block_outlier_ratios(
    model: nn.Module, masks: Masks, batches: list[Batch], objective: Objective, m: float
) -> dict[str, float]:
    """Block name -> outlier ratio of its layers' Wanda scores, from the dense model (weights left unchanged)."""
    modules = {name: model.get_submodule(name.rpartition(".")[0]) for name in masks}
    for name, module in modules.items():
        check_supported(name, module)
    blocks = find_blocks(model, list(masks))
    if blocks[0][1] is model:
        raise UserError("allocation owl gives each repeated block its sparsity: the model has no repeated blocks")
    ratios: dict[str, float] = {}
    transposed = transposed_names(model)
    with calibrating(model):
        calls = capture(model, *blocks[0], batches, objective)
        for index, (block_name, block) in enumerate(blocks):
            layers = {n: modules[n] for n in masks if n.startswith(block_name + ".")}
            if layers:
                ratios[block_name] = outlier_ratio(_block_scores(block, calls, layers, masks, transposed), m)
            if index + 1 < len(blocks):
                for i in range(len(calls)):
                    calls[i] = next_call(calls[i], block(*calls[i][0], **calls[i][1]), block_name)
    return ratios


def _block_scores(
    block: nn.Module, calls: list, layers: dict[str, nn.Module], masks: Masks, transposed: frozenset[str]
) -> torch.Tensor:
    """The Wanda scores of every alive weight of the block's layers, from one pass of the block, concatenated."""
    stats = collect(block, calls, layers, lambda n: ColumnNorms(*inputs_and_device(layers[n])))
    scores = []
    for name, module in layers.items():
        score = weight_matrix(module).double().abs() * stats[name].squares.sqrt().unsqueeze(0)
        alive = matrix(masks[name], name in transposed).to(score.device)
        scores.append(score[alive].cpu())
    return torch.cat(scores)


def owl_densities(ratios: dict[str, float], sizes: dict[str, int], target: float, lam: float) -> dict[str, float]:
    """Block name -> density: min-max normalised outlier ratios in [0, 2 lam], shifted so the size-weighted mean
    density is 1 - target; clamped to [0, 1] with the unclamped blocks shifted again to keep the total."""
    if not ratios:
        return {}
    lo, hi = min(ratios.values()), max(ratios.values())
    spread = {b: (r - lo) / (hi - lo) * 2 * lam if hi > lo else 0.0 for b, r in ratios.items()}
    total = sum(sizes[b] for b in ratios)
    fixed: dict[str, float] = {}
    while True:
        free = [b for b in ratios if b not in fixed]
        budget = (1.0 - target) * total - sum(fixed[b] * sizes[b] for b in fixed)
        shift = (budget - sum(spread[b] * sizes[b] for b in free)) / max(1, sum(sizes[b] for b in free))
        out = {b: spread[b] + shift for b in free}
        clamp = {b: min(1.0, max(0.0, d)) for b, d in out.items() if not 0.0 <= d <= 1.0}
        if not clamp or not free:
            return {**fixed, **out}
        fixed.update(clamp)


def owl_targets(
    model: nn.Module, masks: Masks, batches: list[Batch], objective: Objective, target: float, m: float, lam: float
) -> tuple[dict[str, Target], dict[str, float]]:
    """(each tensor's Target, each block's sparsity): every layer of a block keeps its block's density."""
    ratios = block_outlier_ratios(model, masks, batches, objective, m)
    owner = {n: next((b for b in ratios if n.startswith(b + ".")), None) for n in masks}
    sizes = {b: sum(int(masks[n].numel()) for n in masks if owner[n] == b) for b in ratios}
    densities = owl_densities(ratios, sizes, target, lam)
    targets = {}
    for name, mask in masks.items():
        density = 1.0 - target if owner[name] is None else densities[owner[name]]
        targets[name] = Target(keep=min(int(mask.sum()), round(density * mask.numel())))
    return targets, {b: 1.0 - d for b, d in densities.items()}
