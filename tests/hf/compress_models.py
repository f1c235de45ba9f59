"""Tiny random Hugging Face decoders (no download) for the compression tests, and helpers they share."""

from __future__ import annotations

import torch

VOCAB = 64


def build(family: str, layers: int = 4, seed: int = 0):
    """A tiny random decoder of `family` (eval mode, eager attention so every head's output is observable)."""
    import transformers

    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, max_position_embeddings=64, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if family == "gpt2":
        config = transformers.GPT2Config(n_layer=layers, n_embd=32, n_head=4, n_positions=64, **common)
        model = transformers.GPT2LMHeadModel(config)
    else:
        sizes = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            **common,
        )
        kind = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}[family]
        config_cls = getattr(transformers, kind.replace("ForCausalLM", "Config"))
        model = getattr(transformers, kind)(config_cls(**sizes))
    model.config._attn_implementation = "eager"
    return model.eval()


def calibration(batches: int = 3, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(VOCAB, (4, 16), generator=g)} for _ in range(batches)]


def ids(seed: int = 2) -> torch.Tensor:
    return torch.randint(VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


def logits(model, x: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return model(ids() if x is None else x).logits


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(model, before: dict[str, torch.Tensor]) -> bool:
    now = model.state_dict()
    return set(now) == set(before) and all(torch.equal(now[k], v) for k, v in before.items())
