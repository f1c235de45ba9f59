"""Hugging Face models built from tiny configs (GPT-2 with its transposed Conv1D, a LLaMA-style decoder), held as
users hold them after `from_pretrained`: pruned with magnitude, Wanda and SparseGPT (unstructured and 2:4), saved
with `save_pretrained` (safetensors) and reloaded with identical outputs. Skipped without the `llm` extra."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.export import read_metadata
from prunekit.pruning.masks import prunable_names, transposed_names
from prunekit.pruning.patterns import matrix, violations

transformers = pytest.importorskip("transformers")
VOCAB = 64


def gpt2(tmp_path):
    config = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config), tmp_path / "gpt2"


def llama(tmp_path):
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=VOCAB,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.LlamaForCausalLM(config), tmp_path / "llama"


def as_users_hold_it(build, tmp_path, monkeypatch):
    """A model saved and loaded back through from_pretrained (offline: the hub is never asked)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model, where = build(tmp_path)
    model.save_pretrained(where / "base")
    return transformers.AutoModelForCausalLM.from_pretrained(where / "base"), where


def calibration() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [{"input_ids": torch.randint(VOCAB, (4, 16), generator=g)} for _ in range(3)]


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
@pytest.mark.parametrize("criterion", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("build", [gpt2, llama], ids=["gpt2", "llama"])
def test_prune_save_pretrained_reload_identical(tmp_path, monkeypatch, build, criterion, pattern):
    model, where = as_users_hold_it(build, tmp_path, monkeypatch)
    head = model.get_output_embeddings().weight.detach().clone()
    names = prunable_names(model)
    assert names and not any("lm_head" in n or "wte" in n or "embed" in n for n in names)
    masks = prunekit.prune(model, 0.5, criterion=criterion, batches=calibration(), pattern=pattern, scope="layerwise")
    transposed = transposed_names(model)
    assert violations(masks, pattern, transposed) == []
    for name, mask in masks.items():
        assert float(mask.float().mean()) == pytest.approx(0.5, abs=1 / mask.numel()), name
        assert bool(
            (matrix(model.get_parameter(name), name in transposed)[~matrix(mask, name in transposed)] == 0).all()
        )
    assert torch.equal(model.get_output_embeddings().weight, head)
    model.save_pretrained(where / "pruned")
    assert (where / "pruned" / "model.safetensors").is_file()
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(where / "pruned")
    ids = torch.randint(VOCAB, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
    for name in masks:
        assert torch.equal(reloaded.get_parameter(name), model.get_parameter(name)), name


def test_gpt2_conv1d_is_grouped_along_its_inputs_and_stored_as_nm(tmp_path, monkeypatch):
    model, _ = as_users_hold_it(gpt2, tmp_path, monkeypatch)
    assert "transformer.h.0.attn.c_attn.weight" in transposed_names(model)
    masks = prunekit.prune(model, 0.5, criterion="wanda", batches=calibration(), pattern="2:4")
    c_attn = masks["transformer.h.0.attn.c_attn.weight"]  # stored [in=32, out=96]
    assert c_attn.shape == (32, 96) and bool((c_attn.reshape(8, 4, 96).sum(dim=1) == 2).all())
    path = prunekit.save(model, tmp_path / "g.safetensors", format="sparse", masks=masks)
    entry = read_metadata(path)["tensors"]["transformer.h.0.attn.c_attn.weight"]
    assert entry["encoding"] == "nm" and entry["nm"] == [2, 4, 0]
    loaded = prunekit.load(path, builder=lambda _: transformers.GPT2LMHeadModel(model.config))
    ids = torch.randint(VOCAB, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
