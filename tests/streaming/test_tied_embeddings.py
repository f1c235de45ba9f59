"""Checkpoints whose output layer is tied to the embedding (SmolLM2, GPT-2, small Qwen2 and Llama 3.2 models) store
it once; the model built on the meta device ties it again, so they stream like any other: pruned and compressed
streamed equal pruned and compressed in memory, bit for bit, for a tied Llama, GPT-2 (MLP units and blocks; its
heads stay) and Qwen2 (biased q/k/v projections)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import prunekit
from tests.streaming.checkpoints import VOCAB, calibration, tensors, transformers


def save_tied(root: Path, kind: str) -> Path:
    sizes = {"num_hidden_layers": 3, "vocab_size": VOCAB, "max_position_embeddings": 32, "tie_word_embeddings": True}
    if kind == "gpt2":
        shape = {"n_embd": 32, "n_layer": 3, "n_head": 2, "vocab_size": VOCAB, "n_positions": 32}
        config = transformers.GPT2Config(**shape, bos_token_id=0, eos_token_id=0)
    else:
        attention = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}
        config = transformers.AutoConfig.for_model(kind, **attention, **sizes)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    model.save_pretrained(root, max_shard_size="12KB")
    assert not any("lm_head" in name for name in tensors(root))  # stored once
    return root


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2"])
def test_tied_checkpoints_compress_and_prune_streamed_as_in_memory(tmp_path, kind):
    source = save_tied(tmp_path / "dense", kind)
    options = {"depth": True, "round_to": 1, "batches": calibration()}
    summary = prunekit.compress(source, 0.4, out=tmp_path / "streamed", **options)
    model = transformers.AutoModelForCausalLM.from_pretrained(source)
    report = prunekit.compress(model, 0.4, **options)
    model.save_pretrained(tmp_path / "memory")
    assert summary["plan"] == report.plan.as_dict()
    assert report.after.layers == 2 and report.after.mlp < report.before.mlp
    got, expected = tensors(tmp_path / "streamed"), tensors(tmp_path / "memory")
    assert got.keys() == expected.keys() and all(torch.equal(got[n], expected[n]) for n in got)
    configs = [json.loads((tmp_path / d / "config.json").read_text()) for d in ("streamed", "memory")]
    assert configs[0] == configs[1]

    pruned = prunekit.prune(source, 0.5, criterion="wanda", batches=calibration(), out=tmp_path / "pruned")
    model = transformers.AutoModelForCausalLM.from_pretrained(source)
    prunekit.prune(model, 0.5, criterion="wanda", batches=calibration())
    reference = model.state_dict()
    got = tensors(tmp_path / "pruned")
    assert pruned["sparsity"] == 0.5 and all(torch.equal(got[n], reference[n]) for n in got)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "pruned")
    assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight
