"""The N:M index of sparse files: chosen for N:M masks, bit-exact round trips (Conv1D's transposed layout too),
about 0.55x of the dense fp16 size at 2:4, and hostile headers refused before anything is allocated."""

from __future__ import annotations

import itertools
import math

import pytest
import safetensors.torch
import torch
from torch import nn

import prunekit
from prunekit.export import load, load_state_dict, read_metadata, save
from prunekit.export.bitpack import choose_encoding, code_bits, decode_nm, encode_nm, nm_layout
from prunekit.pruning.patterns import nm_mask
from tests.export.test_formats import assert_bit_exact, masked_state
from tests.export.test_safety import refused, rewrite_meta


def linear_stack() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 128, bias=False), nn.Linear(128, 64, bias=False))


def nm_masks(model: nn.Module, n: int, m: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        name: nm_mask(torch.rand(p.shape, generator=g), torch.ones_like(p, dtype=torch.bool), n, m)
        for name, p in model.named_parameters()
    }


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4), (3, 8)])
def test_nm_round_trip_is_bit_exact(tmp_path, n, m):
    model = linear_stack()
    masks = nm_masks(model, n, m)
    path = save(model, tmp_path / "m.safetensors", format="sparse", masks=masks)
    entry = read_metadata(path)["tensors"]["0.weight"]
    assert entry["encoding"] == "nm" and entry["nm"] == [n, m, 1]
    loaded = load(path, builder=lambda _: linear_stack())
    assert_bit_exact(loaded.state_dict(), masked_state(model, masks))
    assert all(torch.equal(loaded.masks[k], masks[k]) for k in masks)


def test_half_precision_two_four_is_about_0_55_of_dense(tmp_path):
    model = linear_stack()
    masks = nm_masks(model, 2, 4)
    dense = save(model, tmp_path / "d.safetensors", dtype="float16").stat().st_size
    sparse = save(model, tmp_path / "s.safetensors", format="sparse", masks=masks, dtype="float16").stat().st_size
    weights = sum(p.numel() for p in model.parameters())
    assert (weights // 2 * 2 + weights // 4 * 3 / 8) / (weights * 2) == pytest.approx(0.547, abs=1e-3)
    assert 0.54 < sparse / dense < 0.57  # the header is the rest
    index = safetensors.torch.load_file(tmp_path / "s.safetensors")["0.weight::nm"]
    assert index.numel() == 128 * 256 // 4 * 3 // 8 < 128 * 256 // 8  # 3 bits per group of 4: below the bitmask


def test_codes_are_ranks_of_lexicographic_subsets():
    subsets = list(itertools.combinations(range(4), 2))
    mask = torch.zeros(1, 24, dtype=torch.bool)
    for group, kept in enumerate(subsets):
        mask[0, [4 * group + k for k in kept]] = True
    packed = encode_nm(mask, (2, 4, 1))
    bits = [(packed[i // 8] >> (i % 8)) & 1 for i in range(6 * 3)]
    codes = [sum(int(bits[3 * g + b]) << b for b in range(3)) for g in range(6)]
    assert codes == [0, 1, 2, 3, 4, 5] and code_bits(2, 4) == 3 == math.ceil(math.log2(6))
    assert torch.equal(decode_nm(packed, (1, 24), (2, 4, 1)), mask)


def test_transposed_conv1d_layout_and_non_patterns():
    stored = nm_mask(torch.rand(16, 8), torch.ones(16, 8, dtype=torch.bool), 2, 4).t().contiguous()  # [in, out]
    assert nm_layout(stored, axis=0) == (2, 4, 0) and nm_layout(stored) is None  # only along the inputs
    assert torch.equal(decode_nm(encode_nm(stored, (2, 4, 0)), stored.shape, (2, 4, 0)), stored)
    uneven = stored.clone()
    uneven[0, 0] = ~uneven[0, 0]
    assert nm_layout(uneven, axis=0) is None and choose_encoding(uneven, 0) in ("bitmask", "gaps8", "gaps16")
    assert nm_layout(torch.rand(64, 64) > 0.5) is None


def test_gpt_pruned_two_four_saves_its_linear_weights_as_nm(tmp_path):
    torch.manual_seed(0)
    model = prunekit.create_model("gpt", 64, (16,), n_layer=1, n_head=2, n_embd=32)
    masks = prunekit.prune(model, 0.5, pattern="2:4")
    entries = read_metadata(prunekit.save(model, tmp_path / "g.safetensors", format="sparse", masks=masks))["tensors"]
    assert {entries[n]["encoding"] for n in masks} == {"nm"}


def hostile(tmp_path) -> object:
    model = linear_stack()
    return save(model, tmp_path / "h.safetensors", format="sparse", masks=nm_masks(model, 2, 4))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda e: e.update(nm=[2, 4, 5]), "unsupported N:M layout"),
        (lambda e: e.update(nm=[4, 4, 1]), "unsupported N:M layout"),
        (lambda e: e.update(nm=[2, 32, 1]), "unsupported N:M layout"),
        (lambda e: e.update(nm="2:4"), r"needs \[n, m, axis\] integers"),
        (lambda e: e.update(nm=[2, 8, 1]), "does not fit a tensor"),
        (lambda e: e.update(shape=[10**12, 256]), "not a tensor shape"),
        (lambda e: e.update(nm=[2, 4, 0], shape=[128, 256, 1]), "unsupported N:M layout"),
    ],
)
def test_hostile_nm_headers_are_refused(tmp_path, edit, match):
    path = hostile(tmp_path)
    rewrite_meta(path, lambda meta, _: edit(meta["tensors"]["0.weight"]))
    refused(load_state_dict, path, match)


def test_codes_past_the_subsets_are_refused(tmp_path):
    path = hostile(tmp_path)
    rewrite_meta(path, lambda _, tensors: tensors["0.weight::nm"].fill_(0xFF))  # code 7 > the 6 subsets of 2:4
    refused(load_state_dict, path, "code past the 6 subsets")
