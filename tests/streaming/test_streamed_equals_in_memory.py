"""A checkpoint pruned streamed, block by block from its shards, equals the same checkpoint loaded with
`from_pretrained` and pruned in memory, bit for bit, for every criterion and pattern; the output loads with
`from_pretrained` and computes what the in-memory model computes."""

from __future__ import annotations

import json

import pytest
import torch

import prunekit
from tests.streaming.checkpoints import VOCAB, calibration, save, tensors, transformers


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    root = save(tmp_path_factory.mktemp("ckpt") / "dense")
    assert len(list(root.glob("model-*.safetensors"))) >= 3 and (root / "model.safetensors.index.json").is_file()
    return root


def in_memory(root, criterion, pattern, batches):
    model = transformers.AutoModelForCausalLM.from_pretrained(root)
    prunekit.prune(model, 0.5, criterion=criterion, batches=batches, pattern=pattern, scope="layerwise")
    return model


@pytest.mark.parametrize("pattern", ["unstructured", "2:4", "4:8"])
@pytest.mark.parametrize("criterion", ["magnitude", "wanda", "sparsegpt"])
def test_streamed_prune_equals_in_memory_bit_for_bit(dense, tmp_path, criterion, pattern):
    batches = calibration()
    before = {n: t.clone() for n, t in tensors(dense).items()}
    summary = prunekit.prune(
        str(dense), 0.5, criterion=criterion, batches=batches, pattern=pattern, scope="layerwise", out=tmp_path / "o"
    )
    reference = in_memory(dense, criterion, pattern, batches).state_dict()
    got = tensors(tmp_path / "o")
    assert set(got) == set(before)
    pruned = [n for n in got if n.endswith("proj.weight")]
    assert len(pruned) == 21 and summary["sparsity"] == 0.5
    for name, value in got.items():
        assert value.dtype == before[name].dtype and torch.equal(value, reference[name]), name
        if name in pruned:  # a prune, not a copy: half the weights are zero
            assert float((value == 0).float().mean()) == 0.5 and not torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, before[name]), name
    assert all(torch.equal(t, before[n]) for n, t in tensors(dense).items())  # the input is never modified
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "o")
    ids = torch.randint(VOCAB, (2, 16), generator=torch.Generator().manual_seed(3))
    model = in_memory(dense, criterion, pattern, batches)
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize(
    "options", [{"calibration": "sequential"}, {"allocation": "owl"}, {"allocation": "owl", "owl": (2.0, 0.2)}]
)
@pytest.mark.parametrize("criterion", ["wanda", "sparsegpt"])
def test_calibration_orders_and_owl_equal_in_memory(dense, tmp_path, criterion, options):
    batches = calibration()
    summary = prunekit.prune(dense, 0.5, criterion=criterion, batches=batches, out=tmp_path / "o", **options)
    model = transformers.AutoModelForCausalLM.from_pretrained(dense)
    prunekit.prune(model, 0.5, criterion=criterion, batches=batches, **options)
    reference, got = model.state_dict(), tensors(tmp_path / "o")
    assert all(torch.equal(got[n], reference[n]) for n in got)
    default = in_memory(dense, criterion, "unstructured", batches).state_dict()  # the option changes the result
    assert not all(torch.equal(got[n], default[n]) for n in got if n.endswith("proj.weight"))
    if options.get("allocation") == "owl":
        assert len(summary["owl_ratios"]) == 3
        kept = {x["name"].split(".")[2]: x["sparsity"] for x in summary["layers"]}
        assert len(set(kept.values())) > 1  # blocks get different sparsities


def test_single_file_checkpoint_and_summary(tmp_path):
    root = save(tmp_path / "dense", shard=None)
    assert (root / "model.safetensors").is_file() and not (root / "model.safetensors.index.json").exists()
    summary = prunekit.prune(root, 0.5, criterion="wanda", batches=calibration(), out=tmp_path / "o")
    reference = in_memory(root, "wanda", "unstructured", calibration()).state_dict()
    got = tensors(tmp_path / "o")
    assert all(torch.equal(got[n], reference[n]) for n in got)
    index = json.loads((tmp_path / "o" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(got) and len(set(index["weight_map"].values())) == 4  # 3 blocks + rest
    assert (tmp_path / "o" / "config.json").read_bytes() == (root / "config.json").read_bytes()
    assert (tmp_path / "o" / "generation_config.json").is_file()
    written = json.loads((tmp_path / "o" / "prune_summary.json").read_text())
    assert written["peak_rss_bytes"] > 10 * 2**20 and written["blocks_computed"] == [0, 1, 2]
    assert written["sparsity"] == summary["sparsity"] == 0.5 and len(written["layers"]) == 21


def test_activations_on_disk_give_the_same_bytes(tmp_path):
    root = save(tmp_path / "dense")
    for mode in ("memory", "disk"):
        summary = prunekit.prune(
            root, 0.5, criterion="sparsegpt", batches=calibration(), out=tmp_path / mode, activations=mode
        )
        assert summary["activations"] == mode
    memory, disk = tensors(tmp_path / "memory"), tensors(tmp_path / "disk")
    assert all(torch.equal(memory[n], disk[n]) for n in memory)


def test_magnitude_needs_layerwise_and_a_model_takes_no_out(tmp_path):
    root = save(tmp_path / "dense")
    with pytest.raises(prunekit.UserError, match="layerwise"):
        prunekit.prune(root, 0.5, out=tmp_path / "o")
    with pytest.raises(prunekit.UserError, match="out="):
        prunekit.prune(root, 0.5, criterion="wanda", batches=calibration())
    with pytest.raises(prunekit.UserError, match="checkpoint directory"):
        prunekit.prune(torch.nn.Linear(4, 4), 0.5, out=tmp_path / "x")
    assert not (tmp_path / "o").exists()
