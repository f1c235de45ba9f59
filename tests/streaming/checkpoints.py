"""Tiny random Llama checkpoints saved as users get them (several safetensors shards, or one file), their calibration
batches, and the tensors of a checkpoint directory read back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
VOCAB = 64


def llama(layers: int = 3) -> torch.nn.Module:
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=VOCAB,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def save(root: Path, layers: int = 3, shard: str | None = "12KB") -> Path:
    """A checkpoint directory: sharded (an index and several files) unless `shard` is None (one model.safetensors)."""
    model = llama(layers)
    model.save_pretrained(root, max_shard_size=shard) if shard else model.save_pretrained(root)
    return root


def calibration() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(VOCAB, (2, 16), generator=g)} for _ in range(3)]


def tensors(root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for path in sorted(root.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every weight file and the index, by name (what must be identical between two runs)."""
    return {
        p.name: p.read_bytes()
        for p in sorted(root.iterdir())
        if p.suffix in (".safetensors", ".json") and p.name != "prune_summary.json"
    }
