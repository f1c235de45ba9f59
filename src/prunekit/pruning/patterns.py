"""Sparsity patterns as allocations: N:M (at most N kept in every group of M consecutive inputs of an output row)
and the per-output-row split that Wanda compares within.

Every weight is seen as a matrix [outputs, inputs]: a Linear weight as it is, a convolution's weight flattened to
[out_channels, in_channels * kernel] (so an N:M group runs along the flattened input dimension: consecutive kernel
positions of one input channel, then the next channel), and the transposed `Conv1D` of GPT-2-style models as its
transpose. A layer whose input size is not a multiple of M is refused with its name: pruning it to some other
pattern would break the promise that every covered tensor satisfies the pattern. Masks only shrink: an already
pruned weight is never kept, so a group may end with fewer than N.
"""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.pruning.masks import Masks

PATTERN = re.compile(r"([0-9]{1,3}):([0-9]{1,3})")
MAX_M = 16  # groups larger than this are not a hardware pattern; the sparse file's index also assumes it


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """ "unstructured" -> None; "2:4" -> (2, 4). Anything else is a UserError naming the accepted forms."""
    if pattern == "unstructured":
        return None
    match = PATTERN.fullmatch(pattern)
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if 1 <= n < m <= MAX_M:
            return n, m
    raise UserError(f"pattern {pattern!r}: expected unstructured or N:M with 1 <= N < M <= {MAX_M}, e.g. 2:4 or 4:8")


def pattern_sparsity(nm: tuple[int, int]) -> float:
    return 1.0 - nm[0] / nm[1]


def check_sparsity(sparsity: float, nm: tuple[int, int]) -> None:
    """An N:M pattern fixes the sparsity at 1 - N/M; a different target is a contradiction, not a wish."""
    if not math.isclose(sparsity, pattern_sparsity(nm), abs_tol=1e-9):
        raise UserError(
            f"pattern {nm[0]}:{nm[1]} prunes exactly {pattern_sparsity(nm):g} of each layer: "
            f"set sparsity to {pattern_sparsity(nm):g} (got {sparsity:g})"
        )


def matrix(t: Tensor, transposed: bool = False) -> Tensor:
    """The [outputs, inputs] view of a weight-shaped tensor (a view where the layout allows one)."""
    return t.t() if transposed else t.reshape(t.shape[0], -1)


def from_matrix(m: Tensor, shape: torch.Size | tuple[int, ...], transposed: bool = False) -> Tensor:
    """Inverse of :func:`matrix`: back to the tensor's own layout."""
    return m.t().contiguous() if transposed else m.reshape(shape)


def check_divisible(masks: Masks, m: int, transposed: frozenset[str] = frozenset()) -> None:
    for name, mask in masks.items():
        inputs = matrix(mask, name in transposed).shape[1]
        if inputs % m:
            raise UserError(
                f"layer {name} has {inputs} inputs, not a multiple of {m}: it cannot follow an N:M pattern; "
                "add it to prune.ignore"
            )


def nm_mask(score: Tensor, alive: Tensor, n: int, m: int) -> Tensor:
    """Keep the n best-scoring alive entries of every group of m consecutive columns of a [rows, cols] matrix."""
    rows, cols = score.shape
    grouped = torch.where(alive, score.double(), -math.inf).reshape(rows, cols // m, m)
    best = torch.topk(grouped, n, dim=2, sorted=False).indices
    keep = torch.zeros_like(grouped, dtype=torch.bool).scatter_(2, best, True)
    return keep.reshape(rows, cols) & alive


def select_nm(
    scores: dict[str, Tensor], masks: Masks, n: int, m: int, transposed: frozenset[str] = frozenset()
) -> Masks:
    """The N:M allocation: in each group of m consecutive inputs of each output row, keep the n best scores."""
    check_divisible(masks, m, transposed)
    out = {}
    for name, mask in masks.items():
        t = name in transposed
        score = matrix(scores[name].detach().to(mask.device), t)
        if not torch.isfinite(score[matrix(mask, t)]).all():
            raise ValueError(f"criterion produced non-finite scores for {name}")
        out[name] = from_matrix(nm_mask(score, matrix(mask, t), n, m), mask.shape, t)
    return out


def row_mask(score: Tensor, alive: Tensor, keep: int) -> Tensor:
    """Keep `keep` weights of a [rows, cols] matrix, compared within each row (Wanda's comparison group): every
    row keeps keep // rows of its best alive entries, the first keep % rows rows one more; ties go to the lower
    column."""
    return rows_mask(score, alive, row_counts(score.shape[0], keep))


def row_counts(rows: int, keep: int) -> Tensor:
    """How many weights each of `rows` rows keeps when `keep` are kept in all: keep // rows, the first keep % rows
    rows one more."""
    per_row = torch.full((rows,), keep // rows, dtype=torch.long)
    per_row[: keep % rows] += 1
    return per_row


def rows_mask(score: Tensor, alive: Tensor, per_row: Tensor) -> Tensor:
    """Keep the `per_row[r]` best alive entries of every row r (ties: the lower column). Each row is decided from
    its own scores alone, so a matrix decided a slice of rows at a time gives the same bits."""
    cols = score.shape[1]
    ranked = torch.where(alive, score.double(), -math.inf)
    order = torch.argsort(ranked, dim=1, descending=True, stable=True)
    take = torch.arange(cols).unsqueeze(0) < per_row.to(score.device).unsqueeze(1)
    chosen = torch.zeros_like(alive).scatter_(1, order, take)
    return chosen & alive


def satisfies(mask: Tensor, n: int, m: int, transposed: bool = False) -> bool:
    """Whether every group of m consecutive inputs of every output row keeps at most n weights."""
    view = matrix(mask, transposed)
    if view.shape[1] % m:
        return False
    return bool((view.reshape(view.shape[0], -1, m).sum(dim=2) <= n).all())


def violations(masks: Masks, pattern: str, transposed: frozenset[str] = frozenset()) -> list[str]:
    """Names of the masks that break `pattern` (none for "unstructured")."""
    nm = parse_pattern(pattern)
    if nm is None:
        return []
    return [name for name, mask in masks.items() if not satisfies(mask, *nm, name in transposed)]
