"""Hand-written networks of the kinds people prune, none from prunekit's zoo, for the user-model test suites.

Each entry of NETS is (name, factory, example): `factory()` builds the network (seeded by the caller), `example()`
one batch of its inputs as the model takes them (a tensor, or a dict for keyword inputs). Outputs are tensors,
tuples or dicts of tensors. Suites parametrize over NETS, so a new network here is tested everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResidualCNN(nn.Module):
    """A small ResNet with its own head: conv-BN-ReLU stem, two residual blocks (one downsampling), pooled head."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.a1 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.a1_bn = nn.BatchNorm2d(16)
        self.a2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.a2_bn = nn.BatchNorm2d(16)
        self.b1 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.b1_bn = nn.BatchNorm2d(32)
        self.b2 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.b2_bn = nn.BatchNorm2d(32)
        self.down = nn.Sequential(nn.Conv2d(16, 32, 1, stride=2, bias=False), nn.BatchNorm2d(32))
        self.head = nn.Sequential(nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = F.relu(x + self.a2_bn(self.a2(F.relu(self.a1_bn(self.a1(x))))))
        x = F.relu(self.down(x) + self.b2_bn(self.b2(F.relu(self.b1_bn(self.b1(x))))))
        return self.head(x.mean((2, 3)))


class MobileBlockNet(nn.Module):
    """MobileNet-style: depthwise (groups = channels) then pointwise convolutions, hardswish, a grouped conv."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 32, 1)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.hardswish(self.stem(x))
        x = F.hardswish(self.pw(F.relu(self.dw(x))))
        x = F.relu(self.bn(self.grouped(x)))
        return self.fc(x.mean((2, 3)))


class InceptionConcat(nn.Module):
    """Two branches concatenated along channels, then a 1x1 mix and a linear head."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 8, 1)
        self.right = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 12, 3, padding=1))
        self.mix = nn.Conv2d(20, 16, 1)
        self.out = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], dim=1)
        return self.out(F.relu(self.mix(x)).amax((2, 3)))


class TinyUNet(nn.Module):
    """Segmentation: encoder, ConvTranspose2d decoder with a skip concatenation, per-pixel class logits."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(1, 8, 3, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = nn.Conv2d(16, 8, 3, padding=1)
        self.seg = nn.Conv2d(8, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = F.relu(self.enc1(x))
        d = F.relu(self.up(F.relu(self.enc2(e1))))
        return self.seg(F.relu(self.dec(torch.cat([d, e1], dim=1))))


class AttentionClassifier(nn.Module):
    """nn.MultiheadAttention over a sequence of features (batch first), mean-pooled into a linear head."""

    def __init__(self, classes: int = 4, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(10, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 64), nn.GELU(), nn.Linear(64, dim))
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        h = self.norm(h + a)
        h = h + self.ff(h)
        return self.head(h.mean(1))


class CausalSelfAttention(nn.Module):
    """Hand-written multi-head causal attention with separate q, k, v projections and an output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, -1, self.head_dim).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """A GPT-style language model: token embedding tied to the output projection, learned positions, causal
    self-attention blocks, MLP; logits [batch, time, vocab]."""

    def __init__(self, vocab: int = 64, dim: int = 32, heads: int = 4, layers: int = 2, context: int = 16) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(context, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.tok.weight  # tied: one Parameter, two modules

    def forward(self, idx: Tensor) -> Tensor:
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln(x))


class RecurrentTagger(nn.Module):
    """Embedding -> LSTM -> GRU -> per-token linear tags (sequence labelling)."""

    def __init__(self, vocab: int = 50, tags: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, 24, batch_first=True)
        self.gru = nn.GRU(24, 20, batch_first=True)
        self.tag = nn.Linear(20, tags)

    def forward(self, idx: Tensor) -> Tensor:
        h, _ = self.lstm(self.emb(idx))
        h, _ = self.gru(h)
        return self.tag(h)


class TwoInputNet(nn.Module):
    """Keyword inputs (an image and a vector), a dict output with two heads (detection-style)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.vec = nn.Linear(7, 12)
        self.trunk = nn.Linear(24, 32)
        self.cls = nn.Linear(32, 3)
        self.box = nn.Linear(32, 4)

    def forward(self, image: Tensor, meta: Tensor) -> dict[str, Tensor]:
        h = torch.cat([F.relu(self.conv(image)).mean((2, 3)), F.relu(self.vec(meta))], dim=1)
        h = F.relu(self.trunk(h))
        return {"logits": self.cls(h), "boxes": self.box(h)}


class AudioNet(nn.Module):
    """1-D: Conv1d encoder, ConvTranspose1d decoder (an autoencoder that returns a tuple)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv1d(2, 8, 5, stride=2, padding=2)
        self.mid = nn.Conv1d(8, 8, 3, padding=1)
        self.dec = nn.ConvTranspose1d(8, 2, 4, stride=2, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = F.relu(self.mid(F.relu(self.enc(x))))
        return self.dec(z), z


class VolumeNet(nn.Module):
    """3-D convolutions (video or medical volumes)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv3d(1, 6, 3, padding=1)
        self.c2 = nn.Conv3d(6, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.relu(self.c2(F.relu(self.c1(x)))).mean((2, 3, 4)))


class SharedLayerNet(nn.Module):
    """One Linear applied twice, and a weight shared by two modules (weight tying inside a model)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(12, 20)
        self.shared = nn.Linear(20, 20)
        self.mirror = nn.Linear(20, 20)
        self.mirror.weight = self.shared.weight
        self.out = nn.Linear(20, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.inp(x))
        h = torch.tanh(self.shared(torch.tanh(self.shared(h))))
        return self.out(torch.tanh(self.mirror(h)))


class PartlyFrozenNet(nn.Module):
    """A frozen feature extractor (requires_grad False) under a trainable head, as in transfer learning."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU())
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean((2, 3)))


def _images(c: int = 3, size: int = 16, n: int = 4) -> Callable[[], Tensor]:
    return lambda: torch.randn(n, c, size, size)


def _tokens(vocab: int, t: int = 12, n: int = 3) -> Callable[[], Tensor]:
    return lambda: torch.randint(vocab, (n, t))


NETS: list[tuple[str, Callable[[], nn.Module], Callable[[], Any]]] = [
    ("residual_cnn", ResidualCNN, _images()),
    ("mobile_block", MobileBlockNet, _images()),
    ("inception_concat", InceptionConcat, _images()),
    ("tiny_unet", TinyUNet, _images(c=1)),
    ("attention_classifier", AttentionClassifier, lambda: torch.randn(3, 7, 10)),
    ("tiny_gpt", TinyGPT, _tokens(64)),
    ("recurrent_tagger", RecurrentTagger, _tokens(50)),
    ("two_input", TwoInputNet, lambda: {"image": torch.randn(2, 3, 8, 8), "meta": torch.randn(2, 7)}),
    ("audio", AudioNet, lambda: torch.randn(2, 2, 32)),
    ("volume", VolumeNet, lambda: torch.randn(2, 1, 6, 6, 6)),
    ("shared_layer", SharedLayerNet, lambda: torch.randn(5, 12)),
    ("partly_frozen", PartlyFrozenNet, _images()),
]


def outputs(model: nn.Module, example: Any) -> list[Tensor]:
    """Every tensor a model returns for `example`, flattened out of tuples and dicts, in a fixed order."""
    out = model(**example) if isinstance(example, dict) else model(example)
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    return list(out)
