"""Wanda (Sun et al. 2024): score |W_ij| * ||X_j||_2, the weight times the L2 norm of its input feature over all
calibration tokens, compared within each output row (or within each N:M group); no weight update."""

from __future__ import annotations

import torch
from torch import Tensor

from prunekit.pruning.patterns import nm_mask, row_mask
from prunekit.pruning.posttrain.target import Target


class ColumnNorms:
    """Sum over tokens of each input feature's square (float64, so long calibration sets lose nothing)."""

    def __init__(self, inputs: int, device: str) -> None:
        self.squares = torch.zeros(inputs, dtype=torch.float64, device=device)
        self.tokens = 0

    def add(self, rows: Tensor, samples: int = 1) -> None:
        self.squares += rows.double().square().sum(dim=0)
        self.tokens += rows.shape[0]


class Wanda:
    def statistics(self, inputs: int, device: str) -> ColumnNorms:
        return ColumnNorms(inputs, device)

    def prune(
        self, weight: Tensor, stats: ColumnNorms, alive: Tensor, target: Target, layer: str = ""
    ) -> tuple[Tensor, Tensor]:
        score = weight.double().abs() * stats.squares.sqrt().unsqueeze(0)
        if target.nm is not None:
            return weight, nm_mask(score, alive, *target.nm)
        return weight, row_mask(score, alive, int(target.keep))
