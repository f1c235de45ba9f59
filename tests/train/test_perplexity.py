"""The perplexity metric: exp of the mean cross-entropy per token, by hand, with padding labels ignored."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.tasks.metrics import perplexity


class Fixed(nn.Module):
    """Logits from a fixed table indexed by the input token: the expected loss is computable by hand."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x]


def test_uniform_logits_give_the_vocabulary_size():
    model = Fixed(torch.zeros(7, 7))
    x = torch.randint(7, (5, 9))
    assert perplexity(model, [(x[i : i + 2], x[i : i + 2]) for i in range(0, 5, 2)]) == pytest.approx(7.0)


def test_mean_is_over_tokens_not_batches_and_ignores_padding():
    table = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    model = Fixed(table)
    x = torch.tensor([[0, 1, 2], [0, 0, 0]])
    y = torch.tensor([[1, 1, -100], [0, 2, 0]])
    nats = [-math.log(0.25), -math.log(0.8), -math.log(0.5), -math.log(0.25), -math.log(0.5)]
    expected = math.exp(sum(nats) / 5)
    assert perplexity(model, [(x[:1], y[:1]), (x[1:], y[1:])]) == pytest.approx(expected)
    assert perplexity(model, [(x, y)]) == pytest.approx(expected)
    with pytest.raises(UserError):
        perplexity(model, [(x, torch.full_like(y, -100))])
