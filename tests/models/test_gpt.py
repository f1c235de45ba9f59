"""The small GPT: causal, tied, rebuilt from its arch, and the registry's token-input path (FLOPs, latency,
SynFlow, files) that image-only code used to assume away."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import prunekit
from prunekit.common.errors import UserError
from prunekit.common.latency import measure_latency
from prunekit.models import create_model, input_rank
from prunekit.pruning.criteria import CRITERIA, ScoreContext
from prunekit.pruning.flops import module_flops
from prunekit.pruning.masks import dense_masks, prunable_names

SIZES = {"n_layer": 2, "n_head": 2, "n_embd": 16}


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("gpt", 32, (12,), **SIZES)


def test_logits_shape_causality_and_training_signal():
    model = tiny()
    x = torch.randint(32, (3, 12))
    logits = model(x)
    assert logits.shape == (3, 12, 32)
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 32
    again = model(changed)
    assert torch.equal(logits[:, :7], again[:, :7])  # the past never sees the future
    assert not torch.allclose(logits[:, 7:], again[:, 7:])
    F.cross_entropy(logits.reshape(-1, 32), x.reshape(-1)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_embedding_is_the_output_projection_and_every_block_linear_is_prunable():
    model = tiny()
    assert model.wte.weight.grad is None
    x = torch.randint(32, (1, 12))
    hidden = model.ln_f(model.blocks[1](model.blocks[0](model.wte(x) + model.wpe(torch.arange(12)))))
    assert torch.allclose(model(x), hidden @ model.wte.weight.T)
    assert sum(p.numel() for p in model.parameters()) == sum(t.numel() for t in model.state_dict().values())
    names = prunable_names(model)
    assert len(names) == 2 * 6 and all(n.startswith("blocks.") for n in names)


def test_arch_rebuilds_the_same_model_and_files_round_trip(tmp_path):
    model = tiny()
    assert model.arch == {"name": "gpt", "num_classes": 32, "input_shape": [12], **SIZES}
    torch.manual_seed(0)
    rebuilt = create_model(**json.loads(json.dumps(model.arch)))
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values(), strict=True)
    )
    masks = prunekit.prune(model, 0.5, pattern="2:4")
    loaded = prunekit.load(prunekit.save(model, tmp_path / "g.safetensors", format="sparse", masks=masks))
    x = torch.randint(32, (2, 12))
    assert torch.equal(loaded(x), model.eval()(x))
    assert all(torch.equal(loaded.masks[n], masks[n]) for n in masks)


def test_registry_checks_token_shapes_and_options():
    assert input_rank("gpt") == 1 and input_rank("lenet5") == 3
    with pytest.raises(UserError, match=r"\(sequence length,\)"):
        create_model("gpt", 32, (1, 28, 28))
    with pytest.raises(UserError, match="does not take the options"):
        create_model("lenet5", 10, (1, 28, 28), n_layer=2)
    with pytest.raises(UserError, match="multiple of n_head"):
        create_model("gpt", 32, (8,), n_layer=1, n_head=3, n_embd=16)


def test_flops_latency_and_synflow_use_token_inputs():
    model = tiny()
    total, per_module = module_flops(model, (12,))
    linear_macs = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2)
    assert per_module["blocks.0.mlp.fc"] == 2 * 12 * 16 * 64
    assert total > 2 * 12 * linear_macs  # plus attention and the tied head
    assert measure_latency(model, (12,), 2, warmup=1, repeats=2)["median_ms"] > 0
    masks = dense_masks(model, prunable_names(model))
    scores = CRITERIA.get("synflow")(ScoreContext(model, masks))
    assert scores.keys() == masks.keys() and all(torch.isfinite(s).all() for s in scores.values())
