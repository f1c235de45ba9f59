"""More hand-written networks, for the layer layouts tests/user_nets.py does not reach: separate q/k/v projections of
nn.MultiheadAttention (kdim != embed_dim), stacked bidirectional LSTM with projections and a tanh RNN, grouped
ConvTranspose2d and ConvTranspose3d. Same form as user_nets.NETS: (name, factory, example)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossAttention(nn.Module):
    """Queries attend to a memory of another width: MultiheadAttention keeps q_proj/k_proj/v_proj_weight apart."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, kdim=12, vdim=10, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, query: Tensor, memory: Tensor, values: Tensor) -> Tensor:
        out, _ = self.attn(query, memory, values)
        return self.head(out.mean(1))


class DeepRecurrent(nn.Module):
    """A two-layer bidirectional LSTM with projected outputs, then a tanh RNN, on float features."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 12, num_layers=2, bidirectional=True, proj_size=5, batch_first=True)
        self.rnn = nn.RNN(10, 8, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.lstm(x)
        h, _ = self.rnn(h)
        return self.out(h[:, -1])


class GroupedDecoder(nn.Module):
    """Grouped 2-D transposed convolution, then a 3-D one on a volume made of its channels."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, groups=2)
        self.mix = nn.Conv2d(6, 4, 1)
        self.up3 = nn.ConvTranspose3d(1, 2, 2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.mix(F.relu(self.up(x))))
        return self.up3(h.unsqueeze(1))


MORE_NETS: list[tuple[str, Callable[[], nn.Module], Callable[[], Any]]] = [
    (
        "cross_attention",
        CrossAttention,
        lambda: {"query": torch.randn(2, 5, 16), "memory": torch.randn(2, 7, 12), "values": torch.randn(2, 7, 10)},
    ),
    ("deep_recurrent", DeepRecurrent, lambda: torch.randn(3, 9, 6)),
    ("grouped_decoder", GroupedDecoder, lambda: torch.randn(2, 8, 5, 5)),
]
