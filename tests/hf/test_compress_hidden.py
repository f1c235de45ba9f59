"""Hidden-size removal and GPT-2 heads on tiny random decoders (Llama with GQA, Mistral, Qwen2, GPT-2): the model keeps
working, its config states its weights, save/from_pretrained reloads exactly, the kept weights are the original's
at the kept channels, importance decides which channels and heads go, GQA groups stay whole, the model's config is
its own copy, and bad input is one line that changes nothing."""

from __future__ import annotations

import json

import pytest
import torch

import prunekit
from prunekit.common.errors import UserError
from prunekit.pruning.compress.budget import shape_of
from prunekit.pruning.compress.families import family_of
from prunekit.pruning.compress.plan import Sizes, choose
from prunekit.runner.compress import reshape
from tests.hf.compress_models import build, calibration, ids, logits, same_weights, weights
from tests.hf.test_compress import consistent

transformers = pytest.importorskip("transformers")
FAMILIES = ["llama", "mistral", "qwen2", "gpt2"]
MODES = {
    "hidden": dict(width=False, hidden=True),
    "hidden-fraction": dict(width=False, hidden=0.25),
    "width-hidden": dict(hidden=True),
    "all": dict(hidden=True, depth=True, fraction=0.45),  # one of 4 blocks is ~23%: the rest goes to width/hidden
    "hidden-magnitude": dict(width=False, hidden=True, importance="magnitude"),
}
DEAD = [1, 5, 9, 14, 18, 22, 27, 30]  # planted channels / not the lowest indices: a constant score keeps 0..23


def blocks_of(model):
    return model.transformer.h if model.config.model_type == "gpt2" else model.model.layers


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_removal_keeps_a_working_model_and_reloads_exactly(tmp_path, monkeypatch, family, mode):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = build(family, layers=4)
    before = sum(p.numel() for p in model.parameters())
    options = dict(MODES[mode])
    fraction = options.pop("fraction", 0.25)
    report = prunekit.compress(model, fraction, batches=calibration(), **options)
    after = sum(p.numel() for p in model.parameters())
    assert report.after.hidden < report.before.hidden == 32 and report.params_after == after < before
    assert model.config.hidden_size == report.after.hidden == model.get_input_embeddings().weight.shape[1]
    assert abs(1 - after / before - fraction) <= 0.12, report  # tiny models: 8-channel steps are coarse
    if family == "gpt2":  # n_embd = n_head x head_dim: whole heads went with the channels
        assert model.config.n_head * 8 == model.config.n_embd and model.config.n_head < 4
    else:
        assert model.config.head_dim == 8
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == bool(model.config.tie_word_embeddings)
    out = logits(model)
    assert bool(torch.isfinite(out).all())
    consistent(model)
    model.save_pretrained(tmp_path / "small")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "small").eval()
    reloaded.config._attn_implementation = "eager"
    assert torch.equal(logits(reloaded), out)
    prompt = ids()[:1, :5]
    generated = reloaded.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=True)
    greedy = prompt
    for _ in range(5):
        greedy = torch.cat([greedy, logits(reloaded, greedy)[:, -1:].argmax(-1)], dim=1)
    n = generated.shape[1]  # generate stops early at the end-of-text token (0)
    assert torch.equal(generated, greedy[:, :n]) and (n == greedy.shape[1] or int(generated[0, -1]) == 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_kept_weights_are_the_originals_at_the_kept_channels_and_heads(family):
    """Every tensor of the thin model is the original's, taken at plan.hidden along each dim that was the hidden
    size (and for GPT-2 at the kept heads' q, k, v columns and c_proj rows): one consistent channel set. (Without
    calibration data the norms are not rescaled.)"""
    model = build(family, layers=3)
    original = weights(model)
    report = prunekit.compress(model, 0.25, width=False, hidden=True, importance="magnitude")
    keep = torch.tensor(report.plan.hidden)
    assert len(keep) == report.after.hidden < 32
    for name, now in model.state_dict().items():
        expected = original[name]
        block = int(name.split(".")[2]) if ".h." in name else 0  # GPT-2 keeps other heads in every block
        head_cols = torch.tensor([h * 8 + j for h in report.plan.q[block] for j in range(8)])
        for dim, size in enumerate(expected.shape):
            if size == 32 and now.shape[dim] != 32:
                rows = head_cols if "attn.c_proj.weight" in name and dim == 0 else keep
                expected = expected.index_select(dim, rows)
            elif size == 96 and family == "gpt2":  # c_attn: q, k, v of the kept heads
                expected = expected.index_select(dim, torch.cat([head_cols + part * 32 for part in range(3)]))
        assert torch.equal(now, expected), name


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_norms_keep_their_mean_output_scale(family):
    """With calibration data, each kept norm's weight is the original's at the kept channels times
    sqrt(mean square of its input over the kept channels / over all), measured here on the original model."""
    model = build(family, layers=3)
    original = weights(model)
    names = ("ln_1", "ln_2") if family == "gpt2" else ("input_layernorm", "post_attention_layernorm")
    final = "transformer.ln_f" if family == "gpt2" else "model.norm"
    norms = {f"{b}.{n}": getattr(block, n) for b, block in enumerate(blocks_of(model)) for n in names}
    norms["final"] = model.get_submodule(final)
    energy = {key: torch.zeros(32, dtype=torch.float64) for key in norms}

    def measure(key):
        def hook(_, args):
            energy[key].add_(args[0].double().pow(2).sum((0, 1)))

        return hook

    hooks = [m.register_forward_pre_hook(measure(k)) for k, m in norms.items()]
    for batch in calibration():
        logits(model, batch["input_ids"])
    for hook in hooks:
        hook.remove()
    report = prunekit.compress(model, batches=calibration(), sizes={"hidden_size": 24})
    keep = torch.tensor(report.plan.hidden)
    prefix = "transformer.h" if family == "gpt2" else "model.layers"
    for key, e in energy.items():
        name = f"{final}.weight" if key == "final" else f"{prefix}.{key}.weight"
        factor = float((e[keep].mean() / e.mean()).sqrt())
        assert factor > 1.0  # the channels that stay carry more than the average
        torch.testing.assert_close(model.state_dict()[name], original[name][keep] * factor, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("importance", ["activation", "magnitude"])
@pytest.mark.parametrize("family", FAMILIES)
def test_the_channels_that_carry_nothing_are_the_ones_removed(family, importance):
    model = build(family, layers=3)
    with torch.no_grad():
        for block in blocks_of(model):  # every norm outputs zero in the planted channels
            for norm in (
                (block.ln_1, block.ln_2)
                if family == "gpt2"
                else (block.input_layernorm, block.post_attention_layernorm)
            ):
                norm.weight[DEAD] = 0
                if getattr(norm, "bias", None) is not None:
                    norm.bias[DEAD] = 0
        if importance == "magnitude":  # and no weight touches them
            from prunekit.pruning.compress.hidden import hidden_slots

            for module, name, dim in hidden_slots(model, family_of(model)):
                getattr(module, name).index_fill_(dim, torch.tensor(DEAD), 0.0)
    report = prunekit.compress(model, batches=calibration(), sizes={"hidden_size": 24}, importance=importance)
    assert report.plan.hidden == [c for c in range(32) if c not in DEAD]


def test_gpt2_removes_the_head_that_writes_nothing():
    model = build("gpt2", layers=3)
    with torch.no_grad():
        for block in model.transformer.h:  # head 2's values are zero: its output is zero
            block.attn.c_attn.weight[:, 64 + 16 : 64 + 24] = 0
            block.attn.c_attn.bias[64 + 16 : 64 + 24] = 0
    report = prunekit.compress(model, batches=calibration(), sizes={"num_attention_heads": 3, "hidden_size": 24})
    assert report.plan.q == [[0, 1, 3]] * 3 and report.plan.kv == report.plan.q
    assert model.config.n_head == 3 and model.transformer.h[0].attn.c_attn.weight.shape == (24, 72)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_gqa_groups_stay_whole_with_hidden_removal(family):
    for seed in range(3):
        model = build(family, layers=3, seed=seed)
        with torch.no_grad():  # query heads 1 and 2 attend uniformly (weak): the best two heads span both groups
            for block in model.model.layers:
                block.self_attn.q_proj.weight[8:24] = 0
                if block.self_attn.q_proj.bias is not None:
                    block.self_attn.q_proj.bias[8:24] = 0
        report = prunekit.compress(model, 0.45, batches=calibration(seed=seed), hidden=True)
        c = model.config
        assert c.num_attention_heads % c.num_key_value_heads == 0
        assert c.num_attention_heads // c.num_key_value_heads == 2  # whole groups only (group size 2 stays)
        for kv, q in zip(report.plan.kv, report.plan.q, strict=True):
            assert q == [h for g in kv for h in (2 * g, 2 * g + 1)]
        consistent(model)


def test_whole_groups_stay_when_the_best_query_heads_span_groups():
    before, after = Sizes(2, 8, 4, 2, 32), Sizes(2, 8, 2, 1, 24)
    hidden = [float((7 * c) % 32) for c in range(32)]  # a permutation: channels scoring 0..7 go
    plan = choose(before, after, [0, 1], [[1.0] * 8] * 2, [[5.0, 0.0, 0.1, 4.0], [0.0, 3.0, 2.0, 2.0]], hidden)
    assert plan.kv == [[0], [1]] and plan.q == [[0, 1], [2, 3]]  # group sums 5 vs 4.1, then 3 vs 4
    assert plan.hidden == sorted(c for c in range(32) if hidden[c] >= 8)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_size_model_counts_parameters_exactly(family):
    """The parameter count of any sizes, from the model's tensors as products of sizes, is what a model built at
    those sizes has (GPT-2: heads and hidden together)."""
    model = build(family, layers=3)
    before = Sizes(3, int(model.config.n_inner or 128) if family == "gpt2" else 64, 4, 4 if family == "gpt2" else 2, 32)
    shape = shape_of(model, family_of(model), before, 8)
    assert shape.params(before) == sum(p.numel() for p in model.parameters())
    for layers, mlp, heads, kv, hidden in [(2, 40, 2, 1, 24), (1, 8, 4, 2, 8), (3, 64, 2, 2, 16)]:
        if family == "gpt2":
            kv, hidden = heads, heads * 8
            config = transformers.GPT2Config(
                n_layer=layers, n_embd=hidden, n_head=heads, n_inner=mlp, vocab_size=64, n_positions=64
            )
        else:
            config = type(model.config)(
                hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=kv, head_dim=8, vocab_size=64, max_position_embeddings=64,
            )  # fmt: skip
        fresh = type(model)(config)
        assert shape.params(Sizes(layers, mlp, heads, kv, hidden)) == sum(p.numel() for p in fresh.parameters())


def test_a_model_built_from_a_shared_config_keeps_its_sizes():
    config = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=64, max_position_embeddings=64,
    )  # fmt: skip
    a, b = transformers.LlamaForCausalLM(config).eval(), transformers.LlamaForCausalLM(config).eval()
    prunekit.compress(a, 0.3, batches=calibration(), hidden=True)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (32, 3, 64)
    assert b.config.hidden_size == 32 and b.model.config is config
    assert a.config is not config and a.model.config is a.config and a.model.layers[0].self_attn.config is a.config
    assert a.config.hidden_size < 32
    assert bool(torch.isfinite(logits(b)).all())
    consistent(a), consistent(b)


def test_a_runner_shape_record_rebuilds_the_hidden_plan():
    model = build("qwen2", layers=4)
    report = prunekit.compress(model, 0.3, batches=calibration(), hidden=True, depth=True)
    record = json.loads(json.dumps({"compress": report.plan.as_dict()}))
    rebuilt = reshape(build("qwen2", layers=4), record)
    assert same_weights(rebuilt, weights(model)) and rebuilt.config.to_dict() == model.config.to_dict()


def refused(model, match, **kwargs):
    before, config = weights(model), model.config.to_dict()
    with pytest.raises(UserError, match=match) as caught:
        prunekit.compress(model, kwargs.pop("fraction", 0.25), batches=calibration(), **kwargs)
    assert "\n" not in str(caught.value)
    assert same_weights(model, before) and model.config.to_dict() == config


def test_bad_hidden_options_are_refused_and_change_nothing():
    refused(build("llama"), "1 leaves none", hidden=1.0)
    refused(build("llama"), "fraction of hidden channels", hidden="half")
    refused(build("llama"), "between 1", sizes={"hidden_size": 0})
    refused(build("gpt2"), "need hidden_size 24", sizes={"hidden_size": 20, "num_attention_heads": 3})
    refused(build("gpt2"), "need hidden_size", sizes={"hidden_size": 20})
    refused(build("gpt2"), "heads go with its hidden", hidden=True, heads="none")


def test_llama_keeps_hidden_size_a_multiple_of_the_heads(tmp_path):
    """LlamaConfig refuses to save hidden_size % num_attention_heads != 0: the targets keep it, exact sizes that
    break it are refused in one line; Qwen2's config has no such rule."""
    config = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
        head_dim=4, vocab_size=64, max_position_embeddings=64,
    )  # fmt: skip
    for options in (dict(), dict(hidden=True), dict(heads="within")):
        model = transformers.LlamaForCausalLM(config).eval()
        report = prunekit.compress(model, 0.3, batches=calibration(), **options)
        assert report.after.heads < 8 and report.after.hidden % report.after.heads == 0, report
        model.save_pretrained(tmp_path / "small")  # raises if the config states a size it forbids
    refused(build("llama"), "multiple of the query heads", sizes={"hidden_size": 30})
    model = build("qwen2")
    prunekit.compress(model, batches=calibration(), sizes={"hidden_size": 30})
    consistent(model)
    model.save_pretrained(tmp_path / "qwen2")
