"""SparseGPT (Frantar & Alistarh 2023): prune a layer and update its remaining weights to reconstruct W X.

With H = X X^T (summed over calibration tokens) plus a dampening of `percdamp` times its mean diagonal, the columns
are processed in order, in blocks of `blocksize`. Pruning column j with the inverse Hessian restricted to the
columns not yet processed gives the optimal-brain-surgeon update of those columns: with U the upper Cholesky factor
of H^-1, the error (w_j - q_j) / U_jj is spread over the later columns along row j of U. Inside a block the update
is applied column by column; the block's accumulated errors reach the columns after it in one matrix product (the
paper's lazy batched updates). The mask is chosen adaptively per block (unstructured: the weights with the lowest
w^2 / U_jj^2 in the block; N:M: in each group of m columns at its first column), from the weights as updated so far.
Inputs that are zero on every calibration token ("dead", H_jj = 0) get H_jj = 1 and their weights are zeroed
before pruning, as the reference implementation does: they contribute nothing on the calibration data, so the
zeros rank first for removal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from prunekit.errors import UserError
from prunekit.pruning.patterns import nm_mask
from prunekit.pruning.posttrain.target import Target


class Hessian:
    """H = sum over tokens of x x^T, accumulated in float32 (the paper's precision), and the number of samples
    (sequences, or examples) it came from: pruning uses 2 H / samples, the reference's scale, which decides how
    large the 1 given to a dead input's H_jj is beside the others."""

    def __init__(self, inputs: int, device: str) -> None:
        self.matrix = torch.zeros(inputs, inputs, dtype=torch.float32, device=device)
        self.tokens = 0
        self.samples = 0

    def add(self, rows: Tensor, samples: int = 1) -> None:
        x = rows.float()
        self.matrix.addmm_(x.t(), x)
        self.tokens += rows.shape[0]
        self.samples += samples


def inverse_factor(h: Tensor, percdamp: float, layer: str = "") -> Tensor:
    """Upper Cholesky factor U of (H + damp I)^-1; inputs never seen on calibration data get H_jj = 1."""
    h = h.clone()
    diag = h.diagonal()
    diag[diag == 0] = 1.0
    diag += percdamp * diag.mean()
    try:
        inverse = torch.cholesky_inverse(torch.linalg.cholesky(h))
        return torch.linalg.cholesky(inverse, upper=True)
    except torch.linalg.LinAlgError as exc:
        raise UserError(
            f"sparsegpt: the calibration Hessian of layer {layer or '?'} is not positive definite even with "
            f"dampening {percdamp}; raise the dampening or use more calibration batches"
        ) from exc


def _block_mask(score: Tensor, alive: Tensor, keep: int) -> Tensor:
    """Keep the `keep` best alive entries of a block, ties to the lower flat index."""
    flat = torch.where(alive, score, -math.inf).flatten()
    order = torch.argsort(flat, descending=True, stable=True)[:keep]
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=score.device)
    chosen[order] = True
    return chosen.view_as(alive) & alive


class SparseGPT:
    def __init__(self, blocksize: int = 128, percdamp: float = 0.01) -> None:
        if blocksize < 1 or percdamp < 0:
            raise UserError(f"sparsegpt needs blocksize >= 1 and percdamp >= 0, got {blocksize}, {percdamp}")
        self.blocksize, self.percdamp = blocksize, percdamp

    def statistics(self, inputs: int, device: str) -> Hessian:
        return Hessian(inputs, device)

    def prune(
        self, weight: Tensor, stats: Hessian, alive: Tensor, target: Target, layer: str = ""
    ) -> tuple[Tensor, Tensor]:
        w = weight.detach().float().clone()
        rows, cols = w.shape
        w[:, stats.matrix.diagonal() == 0] = 0.0  # dead inputs (the reference's W[:, dead] = 0)
        u = inverse_factor(stats.matrix * (2.0 / max(1, stats.samples)), self.percdamp, layer)
        mask = alive.clone()
        step = self.blocksize
        if target.nm is not None:
            step = max(target.nm[1], step - step % target.nm[1])  # a block holds whole groups
        pruned_rate = 0.0 if target.keep is None else 1.0 - target.keep / (rows * cols)
        for start in range(0, cols, step):
            end = min(start + step, cols)
            block, u_block = w[:, start:end].clone(), u[start:end, start:end]
            d = u_block.diagonal()
            alive_block = alive[:, start:end]
            if target.nm is None:  # this block's share of the layer's kept weights, exact over all blocks
                prune = round(pruned_rate * rows * end) - round(pruned_rate * rows * start)
                block_mask = _block_mask(block.square() / d.square(), alive_block, rows * (end - start) - prune)
            else:
                block_mask = alive_block.clone()
            errors = torch.zeros_like(block)
            for j in range(end - start):
                if target.nm is not None and j % target.nm[1] == 0:
                    span = slice(j, j + target.nm[1])
                    score = block[:, span].square() / d[span].square()
                    block_mask[:, span] = nm_mask(score, alive_block[:, span], *target.nm)
                col = block[:, j]
                err = col * ~block_mask[:, j] / d[j]
                block[:, j:] -= err.unsqueeze(1) * u_block[j, j:].unsqueeze(0)
                errors[:, j] = err
            w[:, start:end] = block
            w[:, end:] -= errors @ u[start:end, end:]
            mask[:, start:end] = block_mask
        return (w * mask).to(weight.dtype), mask
