"""A small GPT (decoder-only transformer) for byte-level language modelling, registered as `gpt`.

Token embedding tied to the output projection (one shared Parameter: the logits are `x @ wte.weight^T`), learned
positions, pre-LayerNorm blocks of causal self-attention and a GELU MLP. The attention is written out by hand with
separate q, k, v and output `nn.Linear` layers, so every projection is a prunable tensor and heads can later be
removed as channels. Input: token ids [B, T] (T <= the sequence length it was built for); output: logits [B, T, V].

    create_model("gpt", num_classes=256, input_shape=(128,), n_layer=4, n_head=4, n_embd=128)

Initialisation as GPT-2: normal(0, 0.02) for linear and embedding weights, residual output projections scaled by
1/sqrt(2 n_layer), zero biases. There is no Linear head, so `output_layer` is "" and every block Linear is prunable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.models.registry import MODELS


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.q, self.k, self.v = (nn.Linear(n_embd, n_embd) for _ in range(3))
        self.proj = nn.Linear(n_embd, n_embd)
        causal = torch.ones(block_size, block_size, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # [B, heads, T, head size]

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, n_embd: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_embd, hidden)
        self.proj = nn.Linear(hidden, n_embd)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd, mlp_ratio * n_embd)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    output_layer = ""  # the head is the tied embedding, not a Linear: every block Linear may be pruned

    def __init__(
        self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, mlp_ratio: int = 4
    ) -> None:
        super().__init__()
        if n_embd % n_head:
            raise UserError(f"model gpt: n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, block_size, mlp_ratio) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self._init(n_layer)

    def _init(self, n_layer: int) -> None:
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(".proj") else 0.02
                nn.init.normal_(module.weight, 0.0, std)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        if t > self.block_size:
            raise UserError(f"model gpt: sequence of {t} tokens, longer than its {self.block_size}")
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)

    def example_input(self, batch_size: int = 1) -> Tensor:
        """Token ids of the full length (zeros), on the model's device."""
        return torch.zeros(batch_size, self.block_size, dtype=torch.long, device=self.wte.weight.device)


@MODELS.register("gpt")
def gpt(num_classes: int, input_shape: tuple[int, ...], n_layer: int = 4, n_head: int = 4, n_embd: int = 128) -> GPT:
    """num_classes = vocabulary size (256 for bytes), input_shape = (sequence length,)."""
    if min(n_layer, n_head, n_embd) < 1:
        raise UserError(f"model gpt: sizes must be positive, got n_layer={n_layer} n_head={n_head} n_embd={n_embd}")
    return GPT(num_classes, input_shape[0], n_layer, n_head, n_embd)


gpt.input_rank = 1  # type: ignore[attr-defined]
