"""Low-bit values in sparse files: exact round trips, real size, floats where values are off the grid, and damaged
pieces refused in one line."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunekit.common.errors import UserError
from prunekit.export import load, read_metadata, save
from prunekit.models import create_model
from prunekit.pruning.lowbit import decode, encode, pack, unpack
from prunekit.pruning.methods.bitprune import quantize
from tests.export.test_safety import rewrite_meta


@settings(max_examples=80, deadline=None)
@given(bits=st.integers(2, 16), seed=st.integers(0, 10_000), scale=st.floats(1e-6, 1e4), size=st.integers(1, 500))
def test_quantised_values_round_trip_bit_for_bit(bits, seed, scale, size):
    values = quantize(torch.randn(size, generator=torch.Generator().manual_seed(seed)) * scale, bits)
    packed = encode(values, bits)
    assert packed is not None
    codes, step = packed
    assert codes.dtype == torch.uint8 and codes.numel() == math.ceil(size * bits / 8)
    assert torch.equal(decode(codes, step, bits, size), values)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 16), codes=st.lists(st.integers(0, 2**16 - 1), max_size=200))
def test_pack_and_unpack_are_inverse(bits, codes):
    c = torch.tensor([x % 2**bits for x in codes], dtype=torch.int64)
    assert torch.equal(unpack(pack(c, bits), bits, len(c)), c)


def test_values_off_the_grid_are_not_packed():
    values = quantize(torch.randn(100, generator=torch.Generator().manual_seed(0)), 4)
    values[3] += 1e-3
    assert encode(values, 4) is None
    assert encode(torch.zeros(5), 4) is None  # nothing to scale by
    assert encode(values.double(), 4) is None  # float32 only


def quantised_lenet(bits: dict[str, int]) -> torch.nn.Module:
    model = create_model("lenet_300_100")
    with torch.no_grad():
        for name, b in bits.items():
            w = model.get_parameter(name)
            w.copy_(quantize(w, b))
    return model


def test_a_sparse_file_stores_quantised_weights_at_their_bits(tmp_path):
    bits = {"fc1.weight": 3, "fc2.weight": 4, "fc3.weight": 5}
    model = quantised_lenet(bits)
    plain, packed = tmp_path / "plain.safetensors", tmp_path / "packed.safetensors"
    save(model, plain, format="sparse")
    save(model, packed, format="sparse", bits=bits)
    weights = sum(model.get_parameter(n).numel() for n in bits)
    assert packed.stat().st_size < plain.stat().st_size * 0.3
    assert packed.stat().st_size < weights * 5 / 8 + 8_000  # about the packed bits, plus biases and header
    loaded = load(packed)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded.bits == bits and read_metadata(packed)["tensors"]["fc1.weight"]["bits"] == 3
    assert read_metadata(packed)["version"] == 2 and read_metadata(plain)["version"] == 1  # old readers refuse 2
    again = tmp_path / "again.safetensors"
    save(loaded, again, format="sparse", masks=loaded.masks, bits=loaded.bits)  # re-export keeps the packing
    assert again.stat().st_size == packed.stat().st_size


def test_a_dense_file_stays_plain_floats_and_off_grid_tensors_stay_floats(tmp_path):
    model = quantised_lenet({"fc1.weight": 3})
    dense = tmp_path / "dense.safetensors"
    save(model, dense, format="dense", bits={"fc1.weight": 3})
    assert "bits" not in read_metadata(dense)["tensors"]["fc1.weight"]
    sparse = tmp_path / "sparse.safetensors"
    save(model, sparse, format="sparse", bits={"fc1.weight": 3, "fc2.weight": 3})  # fc2 was never quantised
    tensors = read_metadata(sparse)["tensors"]
    assert tensors["fc1.weight"]["bits"] == 3 and "bits" not in tensors["fc2.weight"]
    assert torch.equal(load(sparse).fc2.weight, model.fc2.weight)


def _packed_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save(quantised_lenet({"fc2.weight": 3}), path, format="sparse", bits={"fc2.weight": 3})
    return path


def _codes_key(tensors):
    return next(k for k in tensors if k.startswith("fc2.weight::codes"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda meta, t: meta["tensors"]["fc2.weight"].update(bits=17), "bits must be an integer"),
        (lambda meta, t: meta["tensors"]["fc2.weight"].update(bits="3"), "bits must be an integer"),
        (lambda meta, t: meta["tensors"]["fc2.weight"].update(bits=4), "uint8 bytes"),
        (lambda meta, t: t.update({_codes_key(t): t[_codes_key(t)][:-1]}), "uint8 bytes"),
        (lambda meta, t: t.update({_codes_key(t): torch.full_like(t[_codes_key(t)], 255)}), "code is above"),
        (lambda meta, t: t.update({"fc2.weight::scale": torch.tensor([float("nan")])}), "finite positive"),
        (lambda meta, t: t.update({"fc2.weight::scale": torch.tensor([-1.0])}), "finite positive"),
        (lambda meta, t: t.update({"fc2.weight::scale": torch.ones(2)}), "finite positive"),
        (lambda meta, t: t.pop("fc2.weight::scale"), "missing"),
    ],
)
def test_damaged_low_bit_pieces_are_refused_in_one_line(tmp_path, damage, message):
    path = _packed_file(tmp_path)
    rewrite_meta(path, damage)
    with pytest.raises(UserError, match=message) as err:
        load(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bits", [2, 3, 5, 8, 13, 16])
def test_chunked_packing_gives_the_same_stream_as_one_chunk(bits, monkeypatch):
    from prunekit.pruning import lowbit

    codes = torch.randint(0, 2**bits, (333,), generator=torch.Generator().manual_seed(bits))
    whole = pack(codes, bits)
    monkeypatch.setattr(lowbit, "CHUNK", 16)  # many chunks and an odd tail
    assert torch.equal(pack(codes, bits), whole)
    assert torch.equal(unpack(whole, bits, 333), codes)
    assert pack(codes[:0], bits).numel() == 0 and unpack(whole[:0], bits, 0).numel() == 0
