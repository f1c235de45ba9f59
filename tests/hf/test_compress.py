"""Structured compression of tiny random Hugging Face decoders (Llama with GQA, Mistral, Qwen2, GPT-2): outputs stay
defined, the config states the weights' sizes, save_pretrained/from_pretrained reloads exactly, the parameters go
down by about the fraction, and the compressed model computes what the original does with the removed units zeroed."""

from __future__ import annotations

import pytest
import torch

import prunekit
from tests.hf.compress_models import build, calibration, ids, logits

transformers = pytest.importorskip("transformers")
FAMILIES = ["llama", "mistral", "qwen2", "gpt2"]
MODES = {
    "width": dict(width=True),
    "width-within": dict(width=True, heads="within"),
    "width-magnitude": dict(width=True, importance="magnitude"),
    "depth": dict(width=False, depth=True),
    "depth-angular": dict(width=False, depth=True, block_metric="angular"),
    "both": dict(width=True, depth=True),
}


def consistent(model) -> None:
    """Every weight has the shape the config states (what from_pretrained would build)."""
    c = model.config
    fresh = type(model)(type(c).from_dict(c.to_dict()))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("family", FAMILIES)
def test_compress_keeps_a_working_model_and_reloads_exactly(tmp_path, monkeypatch, family, mode):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build(family, layers=6)
    before = sum(p.numel() for p in model.parameters())
    report = prunekit.compress(model, 0.25, batches=calibration(), **MODES[mode])
    after = sum(p.numel() for p in model.parameters())
    assert report.params_before == before and report.params_after == after
    assert 0.12 <= 1 - after / before <= 0.36, report  # tiny models: whole blocks and heads are coarse units
    out = logits(model)
    assert bool(torch.isfinite(out).all())
    consistent(model)
    model.save_pretrained(tmp_path / "small")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "small").eval()
    reloaded.config._attn_implementation = "eager"
    assert type(reloaded) is type(model)
    assert torch.equal(logits(reloaded), out)
    prompt = ids()[:1, :5]
    generated = reloaded.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
    greedy = prompt
    for _ in range(6):  # the cache (indexed by the renumbered layer_idx) gives what recomputing everything gives
        greedy = torch.cat([greedy, logits(reloaded, greedy)[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(generated, greedy)


def zeroed_original(family, report):
    """The original model (same seed) with the units the plan removed zeroed at their outputs: blocks skipped by
    zeroing their residual writes is not possible, so this is used for width plans only."""
    model = build(family, layers=4)
    plan = report.plan
    names = ("self_attn", "o_proj", "mlp", "down_proj") if family != "gpt2" else ("attn", "c_proj", "mlp", "c_proj")
    with torch.no_grad():
        for b, block in enumerate(model.get_submodule("transformer.h" if family == "gpt2" else "model.layers")):
            units = plan.mlp[b]
            down = block.get_submodule(f"{names[2]}.{names[3]}").weight
            dead = [u for u in range(report.before.mlp) if u not in units]
            if family == "gpt2":
                down[dead] = 0
            else:
                down[:, dead] = 0
            if family != "gpt2":
                o = block.get_submodule(f"{names[0]}.{names[1]}").weight
                d = o.shape[1] // report.before.heads
                for h in range(report.before.heads):
                    if h not in plan.q[b]:
                        o[:, h * d : (h + 1) * d] = 0
    return model


@pytest.mark.parametrize("heads", ["groups", "within"])
@pytest.mark.parametrize("family", FAMILIES)
def test_width_equals_the_original_with_removed_units_zeroed(family, heads):
    """Slicing the right rows and columns (and q head i still reading kv head i // group): the thin model computes
    exactly what the original computes with the removed units' and heads' outputs zeroed."""
    model = build(family, layers=4)
    report = prunekit.compress(model, 0.3, batches=calibration(), heads=heads)
    assert report.after.mlp < report.before.mlp
    if family != "gpt2":
        assert report.after.heads < report.before.heads
    torch.testing.assert_close(logits(model), logits(zeroed_original(family, report)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_a_key_value_head_never_goes_without_all_its_query_heads(family):
    for seed in range(4):
        model = build(family, layers=3, seed=seed)
        report = prunekit.compress(model, 0.3, batches=calibration(seed=seed), heads="groups")
        c = model.config
        assert (c.num_attention_heads, c.num_key_value_heads) == (2, 1)
        for kv, q in zip(report.plan.kv, report.plan.q, strict=True):
            assert q == [h for g in kv for h in (2 * g, 2 * g + 1)]  # group size 2: both query heads of a kept kv
        attn = model.model.layers[0].self_attn
        assert attn.num_key_value_groups == 2 and attn.k_proj.weight.shape[0] == c.head_dim


def test_depth_renumbers_blocks_and_per_layer_config():
    model = build("qwen2", layers=6)
    model.config.layer_types = ["full_attention" for _ in range(6)]
    prunekit.compress(model, 0.25, batches=calibration(), width=False, depth=True)
    n = model.config.num_hidden_layers
    assert n == len(model.model.layers) == len(model.config.layer_types) < 6
    assert [block.self_attn.layer_idx for block in model.model.layers] == list(range(n))


def test_exact_sizes():
    model = build("llama", layers=4)
    sizes = {"num_hidden_layers": 3, "intermediate_size": 40, "num_attention_heads": 2, "num_key_value_heads": 2}
    report = prunekit.compress(model, batches=calibration(), sizes=sizes)
    c = model.config
    assert (c.num_hidden_layers, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads) == (3, 40, 2, 2)
    assert report.after.as_config() == {**sizes, "hidden_size": 32}
    consistent(model)
