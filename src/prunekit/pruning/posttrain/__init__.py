"""Post-training pruning from calibration batches: Wanda and SparseGPT, applied block by block.

`POSTTRAIN` maps a criterion name to a factory of its layer method (see `target.LayerMethod`); the pruning step
(`prunekit.pruning.step.prune_step`) sends these criteria here instead of to the score-then-allocate path, because a
layer's scores depend on the pruned layers below it and SparseGPT also rewrites the weights it keeps.
"""

from __future__ import annotations

from collections.abc import Callable

from prunekit.common.registry import Registry
from prunekit.pruning.posttrain.driver import prune_sequential
from prunekit.pruning.posttrain.sparsegpt import SparseGPT
from prunekit.pruning.posttrain.target import LayerMethod, Target
from prunekit.pruning.posttrain.wanda import Wanda

POSTTRAIN: Registry[Callable[[], LayerMethod]] = Registry("post-training criterion")
POSTTRAIN.register("wanda")(Wanda)
POSTTRAIN.register("sparsegpt")(SparseGPT)

__all__ = ["POSTTRAIN", "LayerMethod", "SparseGPT", "Target", "Wanda", "prune_sequential"]
