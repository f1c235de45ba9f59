"""Hugging Face models of every family the installed `transformers` has, from tiny configs (about 100k parameters),
with example inputs: the networks channel pruning is checked on (tests/hf/test_channels.py,
benchmarks/architectures.py). A family this `transformers` lacks is left out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

VOCAB = 128
SIZES = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
# family -> (config class, model class, config arguments beyond SIZES, or a full set when SIZES do not apply)
FAMILIES: dict[str, tuple[str, str, dict[str, Any], bool]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {"num_key_value_heads": 2}, True),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"num_key_value_heads": 2}, True),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"num_key_value_heads": 2}, True),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}, True),
    "phi": ("PhiConfig", "PhiForCausalLM", {}, True),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {"num_key_value_heads": 2, "pad_token_id": 0}, True),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}, True),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"num_key_value_heads": 2, "head_dim": 16}, True),
    "starcoder2": ("Starcoder2Config", "Starcoder2ForCausalLM", {"num_key_value_heads": 2}, True),
    "stablelm": ("StableLmConfig", "StableLmForCausalLM", {"num_key_value_heads": 2}, True),
    "olmo": ("OlmoConfig", "OlmoForCausalLM", {"num_key_value_heads": 2}, True),
    "granite": ("GraniteConfig", "GraniteForCausalLM", {"num_key_value_heads": 2}, True),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", {}, True),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 32}, False),
    "gptj": ("GPTJConfig", "GPTJForCausalLM", {"n_layer": 2, "n_embd": 64, "n_head": 4, "rotary_dim": 8}, False),
    "bloom": ("BloomConfig", "BloomForCausalLM", {"n_layer": 2, "hidden_size": 64, "n_head": 4}, False),
    "falcon": (
        "FalconConfig",
        "FalconForCausalLM",
        {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4},
        False,
    ),
    "opt": (
        "OPTConfig",
        "OPTForCausalLM",
        {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 4,
            "ffn_dim": 128,
            "word_embed_proj_dim": 64,
        },
        False,
    ),
    "bert": ("BertConfig", "BertForMaskedLM", {}, True),
    "t5": (
        "T5Config",
        "T5ForConditionalGeneration",
        {"num_layers": 2, "d_model": 64, "d_ff": 128, "num_heads": 4, "d_kv": 16, "decoder_start_token_id": 0},
        False,
    ),
}
DECODERS = ("llama", "mistral", "qwen2", "phi", "gpt2", "opt", "gemma")  # the families issue 26 names


def build(family: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A tiny model of `family` (seeded, eval mode) and keyword inputs for it; KeyError for an unknown family,
    AttributeError when this `transformers` lacks it."""
    import transformers

    config_name, model_name, extra, sized = FAMILIES[family]
    config = getattr(transformers, config_name)(**({**SIZES, **extra} if sized else extra), vocab_size=VOCAB)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config).eval()
    ids = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(1))
    inputs = {"input_ids": ids}
    if family == "t5":
        inputs["decoder_input_ids"] = ids[:, :4]
    return model, inputs


def available() -> list[str]:
    """The families this `transformers` can build."""
    import transformers

    return [f for f, (c, m, _, _) in FAMILIES.items() if hasattr(transformers, c) and hasattr(transformers, m)]


Builder = Callable[[], tuple[nn.Module, Any]]
