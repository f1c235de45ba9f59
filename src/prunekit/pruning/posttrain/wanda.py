"""Wanda (Sun et al. 2024): score |W_ij| * ||X_j||_2, the weight times the L2 norm of its input feature over all
calibration tokens, compared within each output row (or within each N:M group); no weight update.

The float64 scores are made and ranked a slice of rows at a time (about `CHUNK` scores, some 200 MB of scratch),
never for the whole layer at once: every row (and every N:M group) is decided from its own scores alone, so the
mask is the same bit for bit, and the method's memory stays flat however large the layer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from prunekit.pruning.patterns import nm_mask, row_counts, rows_mask
from prunekit.pruning.posttrain.target import Target

CHUNK = 2**22  # float64 scores ranked at once (each costs about 48 B of scratch: 200 MB)


class ColumnNorms:
    """Sum over tokens of each input feature's square (float64, so long calibration sets lose nothing)."""

    def __init__(self, inputs: int, device: str) -> None:
        self.squares = torch.zeros(inputs, dtype=torch.float64, device=device)
        self.tokens = 0

    def add(self, rows: Tensor, samples: int = 1) -> None:
        self.squares += rows.double().square().sum(dim=0)
        self.tokens += rows.shape[0]


class Wanda:
    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk

    def statistics(self, inputs: int, device: str) -> ColumnNorms:
        return ColumnNorms(inputs, device)

    def prune(
        self, weight: Tensor, stats: ColumnNorms, alive: Tensor, target: Target, layer: str = ""
    ) -> tuple[Tensor, Tensor]:
        norms = stats.squares.sqrt().unsqueeze(0)
        rows, cols = weight.shape
        step = max(1, self.chunk // max(cols, 1))
        per_row = row_counts(rows, int(target.keep)) if target.nm is None else None
        mask = torch.empty_like(alive)
        for start in range(0, rows, step):
            part = slice(start, start + step)
            score = weight[part].double().abs() * norms
            if per_row is None:
                mask[part] = nm_mask(score, alive[part], *target.nm)
            else:
                mask[part] = rows_mask(score, alive[part], per_row[part])
            del score
        return weight, mask
