"""More hand-written networks for the channel-pruning suite, in the NETS format of tests/user_nets.py: structures
whose channels couple in ways the first twelve do not show (an MHA transformer block, inverted residuals, a fused
q/k/v projection, squeeze-excitation, stacked grouped convolutions, tuple inputs), and ones that must be refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MHABlockLM(nn.Module):
    """A pre-LN transformer block built on nn.MultiheadAttention (causal mask), MLP, untied output head."""

    def __init__(self, vocab: int = 40, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.up = nn.Linear(dim, 3 * dim)
        self.down = nn.Linear(3 * dim, dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx: Tensor) -> Tensor:
        x = self.tok(idx)
        t = idx.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=idx.device), 1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        x = x + self.down(F.gelu(self.up(self.ln2(x))))
        return self.head(x)


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand, 3x3 depthwise, 1x1 project (BatchNorm after each), residual add when shapes match."""

    def __init__(self, channels: int, expand: int = 4) -> None:
        super().__init__()
        hidden = channels * expand
        self.expand = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6())
        self.dw = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()
        )
        self.project = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(self.dw(self.expand(x)))


class MobileNetV2ish(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8), InvertedResidual(8))
        self.fc = nn.Linear(8, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class FusedQKV(nn.Module):
    """nanoGPT-style attention: one q/k/v projection split in three, heads inferred (-1), an MLP after it."""

    def __init__(self, dim: int = 24, heads: int = 3, fixed_heads: bool = False) -> None:
        super().__init__()
        self.heads, self.head_dim, self.fixed = heads, dim // heads, fixed_heads
        self.inp = nn.Linear(6, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fc = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(2 * dim, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        b, t, c = h.shape
        q, k, v = self.qkv(h).split(c, dim=2) if self.fixed else self.qkv(h).chunk(3, dim=2)
        count = self.heads if self.fixed else -1
        q, k, v = (z.view(b, t, count, self.head_dim).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, -1)
        h = h + self.proj(y)
        return self.out(F.relu(self.fc(h)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: channels rescaled by a gate computed from their own pooled values."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.squeeze = nn.Linear(16, 4)
        self.excite = nn.Linear(4, 16)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.conv(x))
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(h.mean((2, 3))))))
        return self.fc((h * gate[:, :, None, None]).mean((2, 3)))


class GroupedStack(nn.Module):
    """Grouped convolutions with different group counts tied by a residual addition."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.g2 = nn.Conv2d(16, 16, 3, padding=1, groups=2)
        self.g4 = nn.Conv2d(16, 24, 1, groups=4)
        self.g4b = nn.Conv2d(24, 16, 1, groups=4)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.stem(x))
        h = h + self.g4b(F.relu(self.g4(F.relu(self.g2(h)))))
        return self.fc(h.mean((2, 3)))


class Siamese(nn.Module):
    """Two positional inputs through one shared encoder; returns a tuple (distance logits, the first embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(9, 20), nn.ReLU(), nn.Linear(20, 12))
        self.compare = nn.Linear(12, 2)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        ea, eb = self.enc(a), self.enc(b)
        return self.compare((ea - eb).abs()), ea


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle between two grouped convolutions: a permutation the tracer cannot follow."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 12, 1)
        self.b = nn.Conv2d(12, 12, 1, groups=3)
        self.fc = nn.Linear(12, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.a(x))
        n, c, hh, ww = h.shape
        h = h.view(n, 3, c // 3, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)
        return self.fc(F.relu(self.b(h)).mean((2, 3)))


def _tokens(vocab: int, t: int = 10, n: int = 3) -> Callable[[], Tensor]:
    return lambda: torch.randint(vocab, (n, t))


CHANNEL_NETS: list[tuple[str, Callable[[], nn.Module], Callable[[], Any]]] = [
    ("mha_block_lm", MHABlockLM, _tokens(40)),
    ("mobilenet_v2ish", MobileNetV2ish, lambda: torch.randn(2, 3, 16, 16)),
    ("fused_qkv", FusedQKV, lambda: torch.randn(2, 7, 6)),
    ("squeeze_excite", SqueezeExcite, lambda: torch.randn(2, 3, 8, 8)),
    ("grouped_stack", GroupedStack, lambda: torch.randn(2, 3, 8, 8)),
    ("siamese_tuple", Siamese, lambda: (torch.randn(4, 9), torch.randn(4, 9))),
]
