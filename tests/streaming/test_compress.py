"""Structured compression streamed from a checkpoint directory (`prunekit.compress(path, ..., out=)`) equals the
in-memory `prunekit.compress` of the loaded model and its `save_pretrained`: the same blocks, key/value heads, query
heads and MLP units kept, the same tensors bit for bit under the same names, the same config.json, and the output
loads with `from_pretrained` and computes the same logits. Tiny random Llama with GQA (4 query / 2 key/value heads)
in many shards; every kind of removal, both block metrics, both importances."""

from __future__ import annotations

import pytest
import torch

import prunekit
from tests.streaming.compress_checkpoints import calibration, config, in_memory, logits, save_gqa, tensors

CASES = {
    "kv groups + MLP": (None, {"sizes": {"num_key_value_heads": 1, "num_attention_heads": 2, "intermediate_size": 40}}),
    "heads within groups": (None, {"sizes": {"num_attention_heads": 2}}),
    "depth by influence + width": (0.3, {"depth": True, "round_to": 1}),
    "depth by angular, 2 blocks": (None, {"sizes": {"num_hidden_layers": 2}, "block_metric": "angular"}),
    "angular + groups": (0.5, {"depth": True, "block_metric": "angular", "heads": "groups", "round_to": 4}),
    "magnitude, no calibration": (0.3, {"importance": "magnitude", "round_to": 1}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_streamed_compression_equals_in_memory(tmp_path, case):
    fraction, options = CASES[case]
    if options.get("importance") != "magnitude":
        options = {**options, "batches": calibration()}
    source = save_gqa(tmp_path / "dense")
    report, model = in_memory(source, tmp_path / "memory", fraction, options)
    summary = prunekit.compress(source, fraction, out=tmp_path / "streamed", **options)

    assert summary["plan"] == report.plan.as_dict() and summary["report"]["removed_blocks"] == report.removed_blocks
    assert {k: v for k, v in summary["report"].items() if k != "seconds"} == {
        k: v for k, v in report.as_dict().items() if k != "seconds"
    }
    got, expected = tensors(tmp_path / "streamed"), tensors(tmp_path / "memory")
    assert got.keys() == expected.keys()
    assert all(got[n].dtype == expected[n].dtype and torch.equal(got[n], expected[n]) for n in got)
    assert config(tmp_path / "streamed") == config(tmp_path / "memory")
    assert torch.equal(logits(tmp_path / "streamed"), logits(model))
    assert report.params_after < report.params_before  # something was removed
    assert set(report.removed_blocks) <= {1, 2}  # the nearly idle blocks (a depth decision is not a default)
    before, after = report.before, report.after
    plan = report.plan
    if after.kv_heads < before.kv_heads:  # GQA: a key/value head goes only with all its query heads
        assert all(q == [h for g in kv for h in (2 * g, 2 * g + 1)] for kv, q in zip(plan.kv, plan.q, strict=True))
    assert len({tuple(units) for units in plan.mlp}) > 1 or after.mlp == before.mlp  # units chosen per block


def test_the_decision_follows_the_calibration_data(tmp_path):
    source = save_gqa(tmp_path / "dense")
    options = {"depth": True, "round_to": 1}
    a = prunekit.compress(source, 0.3, batches=calibration(), out=tmp_path / "a", **options)
    other = [{"input_ids": (b["input_ids"] * 7 + 3) % 64} for b in calibration()]
    b = prunekit.compress(source, 0.3, batches=other, out=tmp_path / "b", **options)
    assert a["plan"]["mlp"] != b["plan"]["mlp"]
    report, _ = in_memory(source, tmp_path / "memory", 0.3, {"batches": other, **options})
    assert b["plan"] == report.plan.as_dict()


def test_sizes_transformers_would_not_load_are_refused_before_anything_changes(tmp_path):
    """hidden 40 over 10 query heads (5 key/value groups of 2): 3 groups leave 6 heads, which transformers' config
    validation refuses (40 is not a multiple of 6). Refused in one line: in memory the model is unchanged, streamed
    nothing is written."""
    from prunekit.streaming.workdir import partial_dir
    from tests.streaming.checkpoints import VOCAB, transformers

    config = transformers.LlamaConfig(
        hidden_size=40, intermediate_size=64, num_hidden_layers=2, num_attention_heads=10, num_key_value_heads=5,
        vocab_size=VOCAB, max_position_embeddings=32,
    )  # fmt: skip
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "dense", max_shard_size="12KB")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "dense")
    before = {n: p.clone() for n, p in model.state_dict().items()}
    bad = {"sizes": {"num_key_value_heads": 3, "num_attention_heads": 6}, "batches": calibration()}
    with pytest.raises(prunekit.UserError, match=r"hidden_size \(40\) to be a multiple of the query heads \(6\)"):
        prunekit.compress(model, **bad)
    assert model.config.num_attention_heads == 10
    assert all(torch.equal(p, before[n]) for n, p in model.state_dict().items())
    with pytest.raises(prunekit.UserError, match=r"multiple of the query heads \(6\)"):
        prunekit.compress(tmp_path / "dense", out=tmp_path / "o", **bad)
    assert not (tmp_path / "o").exists() and not partial_dir(tmp_path / "o").exists()
    good = {"sizes": {"num_key_value_heads": 4, "num_attention_heads": 8}, "batches": calibration()}
    summary = prunekit.compress(tmp_path / "dense", out=tmp_path / "o", **good)
    assert transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "o").config.num_attention_heads == 8
    assert summary["report"]["after"]["num_key_value_heads"] == 4


@pytest.mark.parametrize("options", [{"hidden": True}, {"hidden": 0.25}, {"sizes": {"hidden_size": 24}}])
def test_hidden_size_removal_is_refused_streamed(tmp_path, options):
    """Hidden-size removal is in memory only: streamed it is refused in one line and nothing is written."""
    from prunekit.streaming.workdir import partial_dir

    source = save_gqa(tmp_path / "dense")
    with pytest.raises(prunekit.UserError, match="hidden-size removal is not streamed yet"):
        prunekit.compress(source, 0.3, out=tmp_path / "o", batches=calibration(), **options)
    assert not (tmp_path / "o").exists() and not partial_dir(tmp_path / "o").exists()
