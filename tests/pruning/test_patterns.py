"""N:M patterns: every criterion's masks follow them exactly, the checker catches violations, the best N of each
group are kept, and layers or sparsities that cannot follow a pattern are refused with their name."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import prunekit
from prunekit.common.errors import UserError
from prunekit.pruning.criteria import CRITERIA
from prunekit.pruning.patterns import (
    matrix,
    nm_mask,
    parse_pattern,
    row_mask,
    satisfies,
    select_nm,
    violations,
)
from prunekit.pruning.posttrain import POSTTRAIN


class MLP(nn.Module):
    """Inputs and widths all multiples of 8, so 2:4 and 4:8 apply to every layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(16, 32), nn.Linear(32, 24), nn.Linear(24, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def data(n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(16, 16, generator=g), torch.randint(4, (16,), generator=g)) for _ in range(n)]


@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:4"])
@pytest.mark.parametrize("criterion", CRITERIA.names() + POSTTRAIN.names())
def test_every_criterion_follows_the_pattern_exactly(criterion, pattern):
    torch.manual_seed(0)
    model = MLP()
    n, m = parse_pattern(pattern)
    masks = prunekit.prune(model, 1 - n / m, criterion=criterion, batches=data(), pattern=pattern, include_output=True)
    assert violations(masks, pattern) == []
    for name, mask in masks.items():
        groups = matrix(mask).reshape(mask.shape[0], -1, m).sum(dim=2)
        assert bool((groups == n).all()), name  # from dense: exactly n kept in every group, no fewer
        weight = model.get_parameter(name)
        assert bool((weight[~mask] == 0).all()), name


def test_checker_catches_one_bad_group_and_reads_conv1d_transposed():
    mask = torch.tensor([[1, 1, 0, 0, 1, 0, 1, 0]], dtype=torch.bool)
    assert satisfies(mask, 2, 4)
    mask[0, 5] = True  # the second group now keeps three
    assert not satisfies(mask, 2, 4)
    assert satisfies(mask, 3, 4)
    assert not satisfies(torch.ones(2, 6, dtype=torch.bool), 6, 4)  # 6 inputs do not split into groups of 4
    stored = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool)  # [in, out]: columns are rows
    assert satisfies(stored, 2, 4, transposed=True) and not satisfies(stored, 2, 4)
    assert violations({"a": stored}, "2:4", frozenset({"a"})) == [] and violations({"a": stored}, "2:4") == ["a"]


def test_nm_keeps_the_best_n_of_each_group_against_brute_force():
    g = torch.Generator().manual_seed(3)
    score, alive = torch.randn(5, 16, generator=g), torch.rand(5, 16, generator=g) > 0.2
    kept = nm_mask(score, alive, 2, 8)
    for r, start in itertools.product(range(5), range(0, 16, 8)):
        cols = [c for c in range(start, start + 8) if alive[r, c]]
        best = set(sorted(cols, key=lambda c: -float(score[r, c]))[:2])
        assert {c for c in range(start, start + 8) if kept[r, c]} == best
    assert not bool((kept & ~alive).any())  # masks only shrink


def test_row_mask_keeps_an_equal_share_per_row():
    score = torch.tensor([[4.0, 3, 2, 1], [1, 2, 3, 4], [9, 0, 0, 8]])
    kept = row_mask(score, torch.ones_like(score, dtype=torch.bool), 7)  # 7 over 3 rows: 3, 2, 2
    assert kept.tolist() == [[True, True, True, False], [False, False, True, True], [True, False, False, True]]


def test_select_nm_groups_conv_kernels_along_the_flattened_inputs():
    conv = nn.Conv2d(2, 3, 2)  # 2 * 2 * 2 = 8 inputs per output channel
    scores = {"w": torch.arange(24.0).reshape(3, 2, 2, 2)}
    masks = select_nm(scores, {"w": torch.ones_like(conv.weight, dtype=torch.bool)}, 2, 4)
    flat = masks["w"].reshape(3, 8)
    assert flat.tolist() == [[False, False, True, True] * 2] * 3


def test_refusals_name_the_layer_and_the_fix():
    torch.manual_seed(0)
    with pytest.raises(UserError, match="layer fc1.weight has 10 inputs, not a multiple of 4"):
        prunekit.prune(_odd(), 0.5, pattern="2:4", include_output=True)
    with pytest.raises(UserError, match="set sparsity to 0.5"):
        prunekit.prune(MLP(), 0.6, pattern="2:4")
    with pytest.raises(UserError, match="pattern '3:2'"):
        parse_pattern("3:2")
    assert parse_pattern("unstructured") is None and parse_pattern("4:8") == (4, 8)


def _odd() -> nn.Module:
    model = nn.Module()
    model.fc1 = nn.Linear(10, 4)
    return model
