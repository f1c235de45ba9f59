"""Channel pruning of the constructs of current vision models (tests/structured/construct_nets.py): each is pruned,
computing exactly what the original computes with the removed weights zeroed (found by value, independently of
prunekit's own check), or refused in one line naming the layer, the model unchanged. Never a raw exception."""

from __future__ import annotations

import copy

import pytest
import torch

import prunekit
from tests.structured.construct_nets import CONSTRUCT_NETS
from tests.structured.test_any_model import distinct, outputs, same_state, state, zeroed

PRUNED = {  # network -> layers that must lose channels
    "vit_fused_qkv": ["attn.qkv"],  # whole heads: 2 of 4, from q, k and v alike
    "convnextv2_grn": ["stem"],
    "ghost": ["g1.primary.0", "g2.primary.0"],
    "dual_path": ["body.0"],
    "csp_chunk": ["fuse"],
    "mobilevit_unfold": ["local", "proj_in", "mlp.0", "proj_out"],
    "conv_attention_cache": ["stage1.0", "down.0"],
    "t5_dtype_read": ["wi"],
}
REFUSED = {  # network -> what the refusal names
    "swin_relpos": "in module 'attn'.* to ignore",  # heads stay (a bias table indexed by head), the width does not
}
KEPT = {  # network -> group kept whole -> what its reason names
    "convnextv2_grn": {"pw1": "grn.gamma"},
    "dual_path": {"stem": "does not settle", "body.2": "does not settle"},
    "conv_attention_cache": {"attn.q": "fixed count of 4 blocks"},  # heads by reshape(b, self.heads, -1, h * w)
}


@pytest.mark.parametrize("name,factory,example", CONSTRUCT_NETS, ids=[n for n, _, _ in CONSTRUCT_NETS])
def test_each_construct_is_pruned_exactly_or_refused_by_name(name, factory, example):
    torch.manual_seed(0)
    model = factory().eval()
    distinct(model)
    x = example()
    original = copy.deepcopy(model)  # before the forward below: copy.deepcopy refuses a filled cache
    model(x)  # fills caches: the attention-bias cache of conv_attention_cache, a non-leaf tensor
    before = state(model)
    if name in REFUSED:
        with pytest.raises(prunekit.UserError, match=REFUSED[name]) as info:
            prunekit.prune_channels(model, 0.5, example_inputs=x, round_to=1)
        assert "\n" not in str(info.value)
        assert same_state(before, state(model))
        return
    report = prunekit.prune_channels(model, 0.5, example_inputs=x, round_to=1)
    for layer in PRUNED[name]:
        assert report.widths[layer][1] == report.widths[layer][0] // 2, layer
    for group, why in KEPT.get(name, {}).items():
        assert why in report.whole[group]
    assert report.params[1] < report.params[0]
    if name == "vit_fused_qkv":  # the head count the forward reads off the module follows the cut
        assert model.attn.num_heads == 2 and report.removed["attn.qkv"] == [
            c + p * 32 for p in range(3) for c in report.removed["attn.qkv"][:16]
        ]
    reference = zeroed(original, model)
    with torch.no_grad():
        for got, want in zip(outputs(model, x), outputs(reference, x), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_heads_stay_when_a_cut_by_the_stored_head_count_breaks_the_forward():
    """prunekit's GPT reads `self.n_head` in its head reshape but reshapes back with a fixed width: letting heads go
    by the stored count fails, so the call tries again with the heads kept, and prunes the rest."""
    from prunekit.models import create_model

    torch.manual_seed(0)
    model = create_model("gpt", 64, (16,), n_layer=2, n_head=4, n_embd=32)
    report = prunekit.prune_channels(model, 0.5)
    assert report.params[1] < report.params[0]
    assert all(model.blocks[i].attn.n_head == 4 for i in (0, 1))
    assert "blocks.0.attn.q" in report.whole
