"""Structured compression's activation scores (MLP units, query heads, block influence, angular distance) measured
streamed from a checkpoint equal `prunekit.pruning.compress.importance.activations` on the loaded model, bit for bit.
(The same per-block code serves the streamed compression, tests/streaming/test_compress.py.)"""

from __future__ import annotations

import pytest
import torch

from prunekit.streaming.importance import stream_scores
from tests.streaming.checkpoints import calibration, save, transformers


@pytest.mark.parametrize("span", [1, 2])
def test_streamed_scores_equal_the_in_memory_ones(tmp_path, span):
    compress = pytest.importorskip("prunekit.pruning.compress.importance")
    families = pytest.importorskip("prunekit.pruning.compress.families")
    root = save(tmp_path / "dense", layers=4)
    model = transformers.AutoModelForCausalLM.from_pretrained(root)
    family = families.family_of(model)
    reference = compress.activations(model, family, calibration(), _objective(), 2, span)
    got = stream_scores(root, calibration(), span=span)
    assert got.tokens == reference.tokens == 3 * 2 * 16
    assert got.mlp == reference.mlp and got.head == reference.head
    assert got.influence == reference.influence and got.angular == reference.angular
    assert len(got.mlp) == 4 and len(got.mlp[0]) == 64 and len(got.head[0]) == 2 and len(got.angular) == 5 - span
    assert len(set(got.influence)) == 4 and all(v > 0 for v in got.influence)


def _objective():
    from prunekit.common.batches import DEFAULT

    return DEFAULT


def test_scores_depend_on_the_weights(tmp_path):
    a = stream_scores(save(tmp_path / "a", layers=2), calibration())
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight.mul_(2)
    model.save_pretrained(tmp_path / "b")
    b = stream_scores(tmp_path / "b", calibration())
    assert a.mlp[0] == b.mlp[0] and a.mlp[1] != b.mlp[1]
