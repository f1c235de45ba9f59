"""Small networks, one per construct of current vision models that channel pruning met in issue 26, each written
from the usual code of that construct (not from prunekit's code): (name, factory, example input)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ViTAttention(nn.Module):
    """Fused q/k/v Linear reshaped with a head count stored on the module (timm's Attention)."""

    def __init__(self, dim: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, -1))


class ViT(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed, self.attn = nn.Linear(12, dim), ViTAttention(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        x = x + self.attn(x)
        return self.head((x + self.mlp(x)).mean(1))


class GRN(nn.Module):
    """ConvNeXt-V2 global response normalisation (channels last): each channel divided by the mean over channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma, self.beta = nn.Parameter(torch.zeros(dim) + 0.5), nn.Parameter(torch.zeros(dim) + 0.1)

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.stem, self.dw = nn.Conv2d(3, dim, 3, padding=1), nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.pw1, self.grn, self.pw2 = nn.Linear(dim, 4 * dim), GRN(4 * dim), nn.Linear(4 * dim, dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(self.grn(F.gelu(self.pw1(y)))).permute(0, 3, 1, 2)
        return self.head((x + y).mean((2, 3)))


class Ghost(nn.Module):
    """GhostNet's module: a primary conv, a cheap depthwise conv of its output, both concatenated, first `out`
    channels kept."""

    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        self.out, init = out, (out + 1) // 2
        self.primary = nn.Sequential(nn.Conv2d(cin, init, 1), nn.BatchNorm2d(init), nn.ReLU())
        self.cheap = nn.Sequential(nn.Conv2d(init, init, 3, padding=1, groups=init), nn.BatchNorm2d(init), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        a = self.primary(x)
        return torch.cat([a, self.cheap(a)], dim=1)[:, : self.out]


class GhostNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.g1, self.g2, self.head = Ghost(3, 16), Ghost(16, 24), nn.Linear(24, 5)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.g2(self.g1(x)).mean((2, 3)))


class DualPath(nn.Module):
    """DPN: one conv's output split by channel ranges into a residual part (added) and a dense part (concatenated)."""

    def __init__(self, res: int = 16, dense: int = 8) -> None:
        super().__init__()
        self.res = res
        self.stem = nn.Conv2d(3, res + dense, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(res + dense, 16, 1), nn.ReLU(), nn.Conv2d(16, res + dense, 3, padding=1))
        self.head = nn.Linear(res + 2 * dense, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        r, d = x[:, : self.res], x[:, self.res :]
        y = self.body(x)
        out = torch.cat([r + y[:, : self.res], d, y[:, self.res :]], dim=1)
        return self.head(out.mean((2, 3)))


class CSP(nn.Module):
    """Cross-stage partial block: chunk the channels in two, transform one half, concatenate."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        half = width // 2
        self.blocks = nn.Sequential(nn.Conv2d(half, half, 3, padding=1), nn.BatchNorm2d(half), nn.ReLU())
        self.fuse, self.head = nn.Conv2d(width, width, 1), nn.Linear(width, 5)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.stem(x).chunk(2, dim=1)
        return self.head(self.fuse(torch.cat([a, self.blocks(b)], dim=1)).mean((2, 3)))


class MobileViT(nn.Module):
    """MobileViT block: a conv, feature maps unfolded into 2x2 patches for a transformer MLP, folded back."""

    def __init__(self, dim: int = 16, patch: int = 2) -> None:
        super().__init__()
        self.patch = patch
        self.local, self.proj_in = nn.Conv2d(3, dim, 3, padding=1), nn.Conv2d(dim, dim, 1)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.proj_out, self.head = nn.Conv2d(dim, dim, 1), nn.Linear(dim, 5)

    def forward(self, x: Tensor) -> Tensor:
        y = self.proj_in(self.local(x))
        b, c, h, w = y.shape
        p = self.patch
        t = y.reshape(b, c, h // p, p, w // p, p).permute(0, 3, 5, 2, 4, 1).reshape(b, p * p, -1, c)
        t = t + self.mlp(t)
        y = t.reshape(b, p, p, h // p, w // p, c).permute(0, 5, 3, 1, 4, 2).reshape(b, c, h, w)
        return self.head(self.proj_out(y).mean((2, 3)))


class RelPosAttention(nn.Module):
    """Swin-style window attention: a relative-position bias table indexed by head, added to the scores."""

    def __init__(self, dim: int = 32, heads: int = 4, window: int = 3) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads) * 0.1)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.table[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5 + bias).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Swin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.attn, self.head = nn.Linear(6, 32), RelPosAttention(), nn.Linear(32, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        return self.head((x + self.attn(x)).mean(1))


class ConvAttention(nn.Module):
    """Attention on feature maps with 1x1 Conv2d projections (EfficientFormer, LeViT-style), heads by reshape,
    with a per-head attention-bias cache filled by the eval-mode forward (LeViT's `ab`)."""

    def __init__(self, dim: int = 16, heads: int = 4, tokens: int = 16) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q, self.k, self.v = (nn.Conv2d(dim, dim, 1) for _ in range(3))
        self.proj = nn.Conv2d(dim, dim, 1)
        self.biases = nn.Parameter(torch.zeros(heads, tokens) + 0.1)
        self.register_buffer("idxs", torch.arange(tokens * tokens).remainder(tokens).view(tokens, tokens), False)
        self.cache: dict[str, Tensor] = {}

    def bias(self) -> Tensor:
        if self.training:
            return self.biases[:, self.idxs]
        if "ab" not in self.cache:
            self.cache["ab"] = self.biases[:, self.idxs]  # a non-leaf tensor kept on the module
        return self.cache["ab"]

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = (f(x).reshape(b, self.heads, -1, h * w) for f in (self.q, self.k, self.v))
        attn = (q.transpose(-2, -1) @ k * self.scale + self.bias()).softmax(-1)
        return self.proj((v @ attn.transpose(-2, -1)).reshape(b, -1, h, w))


class Hybrid(nn.Module):
    """A conv stage, a strided downsampling conv between stages, then a conv-attention stage (a hybrid)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16))
        self.attn, self.head = ConvAttention(16, 4, 16), nn.Linear(16, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.down(self.stage1(x))
        return self.head((x + self.attn(x)).mean((2, 3)))


class T5FeedForward(nn.Module):
    """T5's feed-forward: the block reads its output layer's weight dtype before calling it."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.inp, self.head = nn.Linear(dim, dim), nn.Linear(dim, 5)
        self.wi, self.wo = nn.Linear(dim, 4 * dim, bias=False), nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.inp(x)
        h = torch.relu(self.wi(x))
        if isinstance(self.wo.weight, Tensor) and h.dtype != self.wo.weight.dtype:
            h = h.to(self.wo.weight.dtype)
        return self.head(x + self.wo(h))


def _img(size: int = 8) -> Tensor:
    return torch.randn(2, 3, size, size)


CONSTRUCT_NETS = [
    ("vit_fused_qkv", ViT, lambda: torch.randn(2, 6, 12)),
    ("convnextv2_grn", ConvNeXtV2Block, _img),
    ("ghost", GhostNet, _img),
    ("dual_path", DualPath, _img),
    ("csp_chunk", CSP, _img),
    ("mobilevit_unfold", MobileViT, _img),
    ("swin_relpos", Swin, lambda: torch.randn(2, 9, 6)),
    ("conv_attention_cache", Hybrid, _img),
    ("t5_dtype_read", T5FeedForward, lambda: torch.randn(2, 16)),
]
