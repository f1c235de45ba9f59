"""A tiny 'pretrained' Hugging Face decoder and a token dataset for runs of the compress method (user factories
the tests name as `tests.hf.compress_task:...`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunekit.data import Dataset

VOCAB = 32
SEQ = 16


class Logits(nn.Module):
    """A causal LM called on token ids, returning logits (as prunekit's smollm2 entry wraps SmolLM2)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, idx: Tensor) -> Tensor:
        return self.lm(input_ids=idx, use_cache=False).logits


def tiny_llama(num_classes: int = VOCAB, input_shape: tuple[int, ...] = (SEQ,)) -> nn.Module:
    """Always the same weights, as from_pretrained gives (a GQA Llama: 4 query heads over 2 key/value heads)."""
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Logits(transformers.LlamaForCausalLM(config))


def tokens() -> Dataset:
    """Token windows of a fixed random bigram chain (learnable), next-token targets, perplexity."""
    g = torch.Generator().manual_seed(0)
    follow = torch.randint(VOCAB, (VOCAB, 2), generator=g)
    stream = [0]
    for _ in range(60 * (SEQ + 1)):
        stream.append(int(follow[stream[-1], int(torch.randint(2, (1,), generator=g))]))
    data = torch.tensor(stream[: 60 * (SEQ + 1)]).view(60, SEQ + 1)
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    return Dataset("tokens", x[:40], y[:40], x[40:50], y[40:50], x[50:], y[50:], VOCAB, (SEQ,), False, "perplexity")
