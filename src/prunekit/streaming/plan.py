"""What each layer of a streamed prune keeps, decided before the first block is read, and one block pruned.

The per-layer counts come from the same allocation as the in-memory prune (`allocation.layer_counts` over every
covered tensor, computed from shapes alone), so a layer keeps exactly as many weights streamed as in memory. A block
is then pruned by the in-memory code itself: Wanda and SparseGPT through the sequential driver's layer pruner on
the block's calibration inputs, magnitude through the magnitude criterion and the per-layer selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.pruning import allocation as alloc
from prunekit.pruning.criteria import CRITERIA, ScoreContext
from prunekit.pruning.masks import Masks, apply_masks, dense_masks
from prunekit.pruning.patterns import check_divisible, check_sparsity, parse_pattern, select_nm
from prunekit.pruning.posttrain import POSTTRAIN, Target
from prunekit.pruning.posttrain.blocks import Call
from prunekit.pruning.posttrain.driver import check_calibration
from prunekit.pruning.posttrain.driver import prune_block as prune_layers
from prunekit.pruning.posttrain.layers import check_supported

STREAMED = ("magnitude", *POSTTRAIN.names())


@dataclass(frozen=True)
class Plan:
    """The criterion and each covered tensor's target (a count of weights kept, or an N:M pattern)."""

    criterion: str
    targets: dict[str, Target]
    transposed: frozenset[str]
    calibration: str = "block"

    @property
    def calibrated(self) -> bool:
        return self.criterion in POSTTRAIN


def make_plan(
    shapes: dict[str, tuple[int, ...]],
    transposed: frozenset[str],
    sparsity: float,
    *,
    criterion: str,
    scope: str,
    allocation: str,
    min_density: float,
    pattern: str,
    calibration: str = "block",
) -> Plan:
    """Each tensor's target; for allocation "owl" only the criterion (the targets come from `owl_plan`)."""
    check_calibration(calibration)
    if criterion not in STREAMED:
        raise UserError(f"a checkpoint is pruned block by block with {', '.join(STREAMED)}; got {criterion!r}")
    if scope not in ("global", "layerwise"):
        raise UserError(f"scope must be global or layerwise, got {scope!r}")
    masks = {n: torch.ones((), dtype=torch.bool).expand(shape) for n, shape in shapes.items()}  # shapes, no memory
    nm = parse_pattern(pattern)
    if nm is not None:
        check_sparsity(sparsity, nm)
        check_divisible(masks, nm[1], transposed)
        if allocation == "owl":
            raise UserError(f"allocation owl sets a sparsity per block: it does not apply to pattern {pattern}")
        return Plan(criterion, {n: Target(nm=nm) for n in shapes}, transposed, calibration)
    if criterion == "magnitude" and scope == "global":
        raise UserError(
            "a checkpoint is pruned one block at a time, so magnitude cannot rank weights across the whole model: "
            "use scope='layerwise' (each layer to the sparsity, or split by allocation)"
        )
    if allocation == "owl":
        if criterion not in POSTTRAIN:
            raise UserError(f"allocation owl sets block sparsities for wanda and sparsegpt, not criterion {criterion}")
        return Plan(criterion, {}, transposed, calibration)
    split = allocation if scope == "layerwise" else "uniform"
    if split == "snip":
        raise UserError("allocation snip needs gradients of the whole model: not available when streaming")
    counts = alloc.layer_counts(masks, sparsity, allocation=split, min_density=min_density)
    return Plan(criterion, {n: Target(keep=k) for n, k in counts.items()}, transposed, calibration)


def prune_block(model: nn.Module, block: nn.Module, names: list[str], calls: list[Call], plan: Plan) -> Masks:
    """Prune the covered tensors `names` of one block (its weights already read) in place; returns their masks."""
    masks = dense_masks(model, names)
    if plan.calibrated:
        modules = {n: model.get_submodule(n.rpartition(".")[0]) for n in names}
        for name, module in modules.items():
            check_supported(name, module)
        method = POSTTRAIN.get(plan.criterion)()
        masks = prune_layers(block, calls, modules, masks, method, plan.targets, plan.transposed, plan.calibration)
    else:
        scores = CRITERIA.get("magnitude")(ScoreContext(model, masks))
        nm = plan.targets[names[0]].nm
        if nm is not None:
            masks = select_nm(scores, masks, *nm, plan.transposed)
        else:
            masks = alloc.select_per_layer(scores, masks, {n: int(plan.targets[n].keep) for n in names})
    apply_masks(model, masks)
    return masks
