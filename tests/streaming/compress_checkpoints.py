"""A tiny random Llama with grouped-query attention (4 query heads over 2 key/value heads) in many shards, whose
blocks 1 and 2 are nearly identities, and the in-memory compression of it that a streamed one must equal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

import prunekit
from tests.streaming.checkpoints import VOCAB, calibration, tensors, transformers


def save_gqa(root: Path, layers: int = 4) -> Path:
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # blocks 1 and 2 barely change the hidden state: depth removal has a right answer
        for b in (1, 2):
            model.model.layers[b].self_attn.o_proj.weight.mul_(0.02)
            model.model.layers[b].mlp.down_proj.weight.mul_(0.02)
    model.save_pretrained(root, max_shard_size="12KB")
    return root


def in_memory(source: Path, out: Path, fraction: float | None, options: dict[str, Any]) -> tuple[Any, Any]:
    """(report, model) of `prunekit.compress` on the loaded checkpoint, saved with save_pretrained to `out`."""
    model = transformers.AutoModelForCausalLM.from_pretrained(source)
    report = prunekit.compress(model, fraction, **options)
    model.save_pretrained(out)
    return report, model


def config(root: Path) -> dict[str, Any]:
    return json.loads((root / "config.json").read_text())


def logits(root_or_model: Any) -> torch.Tensor:
    model = root_or_model
    if isinstance(root_or_model, Path):
        model = transformers.AutoModelForCausalLM.from_pretrained(root_or_model)
    with torch.no_grad():
        return model(calibration()[0]["input_ids"]).logits


__all__ = ["calibration", "config", "in_memory", "logits", "save_gqa", "tensors"]
