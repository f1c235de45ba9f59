"""Importance decides what goes: a block planted as the identity is the one depth removes (block influence and
angular distance), planted dead MLP units and a dead key/value group are what width removes (activation and
magnitude). A random or constant-score stub keeps the lowest indices or draws, and fails these."""

from __future__ import annotations

import pytest
import torch

import prunekit
from tests.hf.compress_models import build, calibration

pytest.importorskip("transformers")


def blocks_of(model, family):
    return model.transformer.h if family == "gpt2" else model.model.layers


def make_identity(block, family):
    """The block adds nothing to the residual stream: its attention and MLP output projections are zero."""
    with torch.no_grad():
        if family == "gpt2":
            block.attn.c_proj.weight.zero_(), block.attn.c_proj.bias.zero_()
            block.mlp.c_proj.weight.zero_(), block.mlp.c_proj.bias.zero_()
        else:
            block.self_attn.o_proj.weight.zero_()
            block.mlp.down_proj.weight.zero_()


@pytest.mark.parametrize("metric", ["influence", "angular"])
@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gpt2"])
@pytest.mark.parametrize("planted", [1, 4])
def test_depth_removes_the_block_that_is_the_identity(family, metric, planted):
    model = build(family, layers=6)
    make_identity(blocks_of(model, family)[planted], family)
    report = prunekit.compress(model, batches=calibration(), sizes={"num_hidden_layers": 5}, block_metric=metric)
    assert report.removed_blocks == [planted]


@pytest.mark.parametrize("importance", ["activation", "magnitude"])
@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_width_removes_planted_dead_mlp_units(family, importance):
    model = build(family, layers=3)
    dead = [9, 20, 33, 41, 50, 55, 60, 63]  # not the lowest indices: a constant score keeps 0..55
    with torch.no_grad():
        for block in blocks_of(model, family):
            if family == "gpt2":  # c_fc weight [in, out]; gelu(0) = 0
                block.mlp.c_fc.weight[:, dead] = 0
                block.mlp.c_fc.bias[dead] = 0
                block.mlp.c_proj.weight[dead] = 0
            else:  # silu(0) * up = 0
                block.mlp.gate_proj.weight[dead] = 0
                if importance == "magnitude":
                    block.mlp.up_proj.weight[dead] = 0
                    block.mlp.down_proj.weight[:, dead] = 0
    report = prunekit.compress(model, batches=calibration(), sizes={"intermediate_size": 56}, importance=importance)
    for units in report.plan.mlp:
        assert not set(units) & set(dead) and len(units) == 56


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_heads_removes_the_key_value_group_that_writes_nothing(family):
    model = build(family, layers=3)
    with torch.no_grad():
        for block in model.model.layers:  # key/value head 0 (query heads 0 and 1) reads zero values
            block.self_attn.v_proj.weight[:8] = 0
            if block.self_attn.v_proj.bias is not None:
                block.self_attn.v_proj.bias[:8] = 0
    report = prunekit.compress(model, batches=calibration(), sizes={"num_key_value_heads": 1, "num_attention_heads": 2})
    assert report.plan.kv == [[1]] * 3 and report.plan.q == [[2, 3]] * 3
