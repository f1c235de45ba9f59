"""What a run settles before it touches data or disk: the config's pairings, the device, the seeds of its draws."""

from __future__ import annotations

import torch

from prunekit import distributed
from prunekit.common.errors import UserError
from prunekit.config import Config
from prunekit.pruning import allocation
from prunekit.pruning.methods import METHODS, retrain_epochs
from prunekit.pruning.step import check_criterion, wants_data


def pick_device(name: str, world: distributed.World = distributed.SOLO) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda requested but CUDA is not available; use device: auto or cpu")
    if world.backend == "nccl":
        return torch.device("cuda", world.local_rank)
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def seed_for(seed: int, *parts: int) -> int:
    value = seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**63 - 1)
    return value


def check_config(cfg: Config) -> None:
    """Everything about the config that needs no data or model: method, criterion, allocation, their pairing."""
    p = cfg.prune
    METHODS.get(p.method)
    if (p.structure == "compress") != (p.method == "compress"):
        raise UserError("prune.structure compress and prune.method compress go together (set both)")
    if p.structure == "compress":
        pass
    elif p.structure == "channel":
        from prunekit.pruning.structured import CHANNEL_CRITERIA

        CHANNEL_CRITERIA.get(p.criterion)
        if p.method not in ("oneshot", "imp", "gradual", "amc", "sequential"):
            raise UserError(
                f"prune.structure channel works with method oneshot, imp, gradual, amc or sequential, not {p.method}"
            )
        if p.method == "imp" and p.rewind not in ("lr", "finetune"):
            raise UserError("channel pruning retrains the pruned weights: set prune.rewind to lr or finetune")
        if p.control != "none" or p.layer_rate:
            raise UserError("prune.control and prune.layer_rate apply to unstructured pruning only")
    else:
        if p.method == "sequential":
            raise UserError("method sequential prunes channels layer by layer: set prune.structure: channel")
        check_criterion(p.criterion)  # an unknown criterion fails before anything is computed
        if p.allocation == "owl":
            wants_data(p.criterion, p.scope, p.allocation)  # owl is for wanda and sparsegpt only
        elif p.scope == "layerwise":
            allocation.ALLOCATIONS.get(p.allocation)
    if p.control != "none" and p.method != "imp":
        raise UserError(f"prune.control applies to method imp (the lottery-ticket controls), not {p.method}")
    if p.method == "bitprune" and p.bits_fixed_epochs >= retrain_epochs(cfg):
        raise UserError(
            f"prune.bits_fixed_epochs ({p.bits_fixed_epochs}) leaves no epoch to learn bitlengths in: make it smaller "
            f"than the round's {retrain_epochs(cfg)} epochs (prune.retrain_epochs)"
        )
