"""Attention heads: PrunedMultiheadAttention computes what nn.MultiheadAttention does with the removed heads'
weights zeroed, under every option of its forward; criteria rank whole heads; ConvTranspose filters are scored
by output channel."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import prunekit
from prunekit.pruning.structured import PrunedMultiheadAttention
from prunekit.pruning.structured.attention import remove_heads
from tests.structured.channel_nets import MHABlockLM
from tests.user_nets import TinyUNet

OPTIONS = [
    {"batch_first": True},
    {},
    {"batch_first": True, "bias": False},
    {"add_bias_kv": True},
    {"add_zero_attn": True, "batch_first": True},
    {"kdim": 5, "vdim": 7, "batch_first": True},
]


def zero_heads(mha: nn.MultiheadAttention, heads: list[int]) -> nn.MultiheadAttention:
    """A copy whose q, k, v rows and out_proj columns of `heads` are zero (written from the layout, not the code)."""
    z = copy.deepcopy(mha)
    d, inner = mha.head_dim, mha.embed_dim
    rows = [h * d + j for h in heads for j in range(d)]
    with torch.no_grad():
        if z._qkv_same_embed_dim:
            for part in range(3):
                z.in_proj_weight[[part * inner + r for r in rows]] = 0
        else:
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                getattr(z, name)[rows] = 0
        if z.in_proj_bias is not None:
            for part in range(3):
                z.in_proj_bias[[part * inner + r for r in rows]] = 0
        if z.bias_k is not None:
            z.bias_k[..., rows] = 0
            z.bias_v[..., rows] = 0
        z.out_proj.weight[:, rows] = 0
    return z


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("need_weights", [True, False])
def test_pruned_attention_matches_zeroed_heads(options, need_weights):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, **options).eval()
    reference = zero_heads(mha, [1, 3])
    remove_heads(mha, [4, 5, 6, 7, 12, 13, 14, 15])
    assert isinstance(mha, PrunedMultiheadAttention) and mha.num_heads == 2
    batch_first = options.get("batch_first", False)
    q = torch.randn(2, 5, 16)
    k = torch.randn(2, 6, options.get("kdim", 16))
    v = torch.randn(2, 6, options.get("vdim", 16))
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[0, -2:] = True
    masks = [
        {},
        {"attn_mask": torch.rand(5, 6) > 0.7},
        {"attn_mask": torch.randn(5, 6), "key_padding_mask": torch.zeros(2, 6).masked_fill(padding, -1e9)},
        {"key_padding_mask": padding},
    ]
    with torch.no_grad():
        for extra in masks:
            got, got_w = mha(q, k, v, need_weights=need_weights, **extra)
            want, want_w = reference(q, k, v, need_weights=need_weights, **extra)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            assert (got_w is None) == (want_w is None)
            if got_w is not None:
                assert got_w.shape == want_w.shape
        unbatched = [t[0] if batch_first else t[:, 0] for t in (q, k, v)]
        torch.testing.assert_close(mha(*unbatched)[0], reference(*unbatched)[0], rtol=1e-5, atol=1e-6)


def test_per_head_masks_must_fit_the_remaining_heads():
    mha = nn.MultiheadAttention(8, 4, batch_first=True).eval()
    remove_heads(mha, [0, 1])
    x = torch.randn(2, 3, 8)
    with pytest.raises(RuntimeError, match="3 heads left"):
        mha(x, x, x, attn_mask=torch.zeros(2 * 4, 3, 3))
    assert mha(x, x, x, attn_mask=torch.zeros(2 * 3, 3, 3))[0].shape == (2, 3, 8)


def test_partial_heads_are_refused():
    mha = nn.MultiheadAttention(8, 4)
    with pytest.raises(ValueError, match="not whole heads"):
        remove_heads(mha, [0])


def test_the_weakest_heads_go_first():
    torch.manual_seed(0)
    model = MHABlockLM()
    with torch.no_grad():  # heads 0 and 2 get tiny q, k and v rows
        for part in range(3):
            for head in (0, 2):
                model.attn.in_proj_weight[part * 32 + head * 8 : part * 32 + (head + 1) * 8] *= 1e-3
    kept = model.attn.out_proj.weight[:, [*range(8, 16), *range(24, 32)]].clone()
    report = prunekit.prune_channels(model, 0.5, example_inputs=torch.randint(40, (1, 5)), scope="layerwise")
    assert report.removed["attn"] == [*range(0, 8), *range(16, 24)]
    assert torch.equal(model.attn.out_proj.weight, kept)


def test_conv_transpose_filters_are_scored_by_output_channel():
    torch.manual_seed(0)
    model = TinyUNet()
    with torch.no_grad():
        model.up.weight[:, :4] *= 1e-3  # ConvTranspose weight is [in, out, k, k]: output channels 0..3 are weak
    kept = model.up.weight[:, 4:].clone()
    prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(1, 1, 8, 8), ignore=["enc2"])
    assert torch.equal(model.up.weight, kept)
