"""Channel pruning of tiny Hugging Face decoders (grouped-query attention, rotary embeddings, key/value caches):
each call ends within seconds with a thinner model that computes what the original does with the removed channels
zeroed, or a one-line refusal with the model unchanged. Before the bounded coupling search (structured/search.py)
these calls never returned. Skipped without `transformers`."""

from __future__ import annotations

import copy
import signal
import time

import pytest
import torch

import prunekit
from prunekit.common.batches import call_model
from prunekit.pruning.structured.inputs import output_tensors

pytest.importorskip("transformers")

from tests.hf.tiny_models import available, build  # noqa: E402

BOUND = 30  # seconds: the limit for a model under 1M parameters
HANGED = ("llama", "mistral", "qwen2", "phi")


class Hung(Exception):
    pass


def bounded(fn, seconds: int = BOUND):
    def alarm(*_):
        raise Hung(f"no result in {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def zeroed_reference(original, pruned):
    """The original with every weight entry the pruned model dropped set to zero (entries matched by value)."""
    reference = copy.deepcopy(original)
    after = dict(pruned.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for name, t in reference.named_parameters(remove_duplicate=False):
            t.masked_fill_(~torch.isin(t, after[name]), 0.0)
    return reference


@pytest.mark.parametrize("family", HANGED)
@pytest.mark.parametrize("cache", [True, False])
def test_gqa_and_rotary_decoders_prune_in_seconds(family, cache):
    model, inputs = build(family)
    if cache:  # a key/value cache concatenated onto the keys: another cycle the tracer's indices drift round
        inputs["use_cache"] = True
    original = copy.deepcopy(model)
    start = time.monotonic()
    report = bounded(lambda: prunekit.prune_channels(model, 0.5, example_inputs=inputs))
    assert time.monotonic() - start < BOUND
    before, after = report.params
    assert before == sum(p.numel() for p in original.parameters())
    assert after < 0.85 * before
    assert after == sum(p.numel() for p in model.parameters())
    # the MLP lost half its units; attention projections that cannot be coupled stay whole, and say why
    mlp = [n for n in report.widths if n.endswith(("up_proj", "gate_proj", "fc1", "dense_h_to_4h"))]
    assert mlp and all(report.widths[n][1] == report.widths[n][0] // 2 for n in mlp)
    reference = zeroed_reference(original, model)
    with torch.no_grad():
        ids = {"input_ids": torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(5))}
        got = output_tensors(call_model(model, {**ids, "use_cache": False}))[0]
        want = output_tensors(call_model(reference, {**ids, "use_cache": False}))[0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", [f for f in available() if f not in HANGED])
def test_every_family_prunes_or_refuses_in_one_line(family):
    model, inputs = build(family)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        report = bounded(lambda: prunekit.prune_channels(model, 0.5, example_inputs=inputs))
    except prunekit.UserError as exc:
        assert "\n" not in str(exc)
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()), "a refusal changed the model"
        return
    assert report.params[1] < report.params[0]


def test_gpt2_conv1d_layers_are_pruned():
    """GPT-2's Conv1D (a Linear with its weight stored [in, out]) was invisible to the tracer: nothing pruned."""
    model, inputs = build("gpt2")
    original = copy.deepcopy(model)
    report = bounded(lambda: prunekit.prune_channels(model, 0.5, example_inputs=inputs))
    for i in (0, 1):
        fc = model.transformer.h[i].mlp.c_fc
        assert report.widths[f"transformer.h.{i}.mlp.c_fc"] == (256, 128)
        assert fc.weight.shape == (64, 128) and fc.nf == 128
        assert model.transformer.h[i].mlp.c_proj.weight.shape == (128, 64)
    assert model.lm_head.weight is model.transformer.wte.weight
    reference = zeroed_reference(original, model)
    with torch.no_grad():
        ids = {"input_ids": torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(5))}
        torch.testing.assert_close(model(**ids).logits, reference(**ids).logits, rtol=1e-4, atol=1e-5)


def test_falcon_prunes_without_an_ignore_keeping_its_fused_qkv_whole_automatically():
    """Falcon's fused query_key_value (split by fixed head counts) breaks when it loses channels: it was refused with
    advice to ignore it; now it is kept whole by itself (in every block, the report says why) and the rest pruned."""
    model, inputs = build("falcon")
    original = copy.deepcopy(model)
    report = bounded(lambda: prunekit.prune_channels(model, 0.5, example_inputs=inputs))
    assert report.params[1] < 0.8 * report.params[0]
    for i in (0, 1):
        why = report.whole[f"transformer.h.{i}.self_attention.query_key_value"]
        assert why.startswith("kept whole automatically") and "'transformer.h.*.self_attention.query_key_value'" in why
    reference = zeroed_reference(original, model)
    with torch.no_grad():
        ids = {"input_ids": torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(5))}
        torch.testing.assert_close(model(**ids).logits, reference(**ids).logits, rtol=1e-4, atol=1e-5)
