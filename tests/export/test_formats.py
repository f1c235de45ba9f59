"""Dense and sparse files: bit-exact round trips, recovered masks, real size savings, index encodings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.export import load, load_state_dict, read_metadata, save
from prunekit.export.bitpack import choose_encoding, decode_gaps, encode_gaps, pack_mask, unpack_mask
from prunekit.models import create_model

SPARSITIES = (0.0, 0.5, 0.9, 0.99)


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("lenet_300_100")


def random_masks(model: nn.Module, sparsity: float, seed: int = 1) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(t.shape, generator=gen) >= sparsity for n, t in model.state_dict().items() if t.ndim > 1}


def masked_state(model: nn.Module, masks: dict[str, Tensor]) -> dict[str, Tensor]:
    """The state dict with pruned positions set to +0.0, as every file stores them."""
    return {n: t.masked_fill(~masks[n], 0) if n in masks else t for n, t in model.state_dict().items()}


def assert_bit_exact(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name].view(-1).view(torch.uint8), b[name].view(-1).view(torch.uint8)), name


@pytest.mark.parametrize("fmt", ["dense", "sparse"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_round_trip_is_bit_exact_and_keeps_masks(tmp_path, fmt, sparsity):
    model = lenet()
    masks = random_masks(model, sparsity)
    path = save(model, tmp_path / "m.safetensors", format=fmt, masks=masks)
    loaded = load(path)
    assert not loaded.training
    assert_bit_exact(loaded.state_dict(), masked_state(model, masks))
    if fmt == "sparse":
        assert loaded.masks.keys() == masks.keys()
        assert all(torch.equal(loaded.masks[n], masks[n]) for n in masks)
    else:
        assert not hasattr(loaded, "masks")
    assert read_metadata(path)["sparsity"] == pytest.approx(sparsity, abs=0.01)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_sparse_round_trip(tmp_path, dtype):
    model, masks = lenet(), random_masks(lenet(), 0.9)
    path = save(model, tmp_path / "m.safetensors", format="sparse", masks=masks, dtype=dtype)
    loaded = load(path)
    half = getattr(torch, dtype)
    state = loaded.state_dict()
    for name, ref in masked_state(model, masks).items():
        assert state[name].dtype == torch.float32
        assert torch.equal(state[name], ref.to(half).float()), name
        torch.testing.assert_close(state[name], ref, rtol=1e-2, atol=1e-3)
    assert all(torch.equal(loaded.masks[n], masks[n]) for n in masks)
    assert {e["stored_dtype"] for e in read_metadata(path)["tensors"].values()} == {dtype}


def test_sparse_files_are_really_smaller(tmp_path):
    model = lenet()
    dense = save(model, tmp_path / "dense.safetensors").stat().st_size
    sizes, encodings = {}, {}
    for sparsity in (0.5, 0.9, 0.99):
        path = save(model, tmp_path / f"{sparsity}.safetensors", format="sparse", masks=random_masks(model, sparsity))
        sizes[sparsity] = path.stat().st_size / dense
        encodings[sparsity] = read_metadata(path)["tensors"]["fc1.weight"]["encoding"]
    assert encodings[0.5] == "bitmask"
    assert sizes[0.9] <= 0.14
    assert encodings[0.99] in ("gaps8", "gaps16")
    assert sizes[0.99] < sizes[0.9] < sizes[0.5] < 0.55


def test_batchnorm_buffers_survive_and_masks_default_to_zeros(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet20", input_shape=(3, 32, 32))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
            if isinstance(module, nn.Conv2d):
                module.weight.masked_fill_(torch.rand_like(module.weight) > 0.2, 0)
    for fmt in ("dense", "sparse"):
        loaded = load(save(model, tmp_path / f"{fmt}.safetensors", format=fmt))
        assert_bit_exact(loaded.state_dict(), model.state_dict())
    convs = {f"{n}.weight": m.weight != 0 for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert loaded.masks.keys() == convs.keys()
    assert all(torch.equal(loaded.masks[n], convs[n]) for n in convs)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), model.eval()(x))


def test_metadata_contract(tmp_path):
    model = lenet()
    path = save(
        model, tmp_path / "m.safetensors", format="sparse", masks=random_masks(model, 0.9), metadata={"seed": 3}
    )
    meta = read_metadata(path)
    assert meta["format"] == "sparse" and meta["version"] == 1 and meta["dtype"] == "float32"
    assert meta["arch"] == {"name": "lenet_300_100", "num_classes": 10, "input_shape": [1, 28, 28]}
    assert meta["extra"] == {"seed": 3}
    fc1 = meta["tensors"]["fc1.weight"]
    assert fc1["shape"] == [300, 784] and fc1["dtype"] == "float32" and fc1["masked"]
    assert fc1["nnz"] == int(random_masks(model, 0.9)["fc1.weight"].sum())
    state, meta2 = load_state_dict(path)
    assert meta2 == meta and state["fc1.weight"].shape == (300, 784)


def test_builder_and_missing_or_unknown_architecture(tmp_path):
    class Tiny(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.fc = nn.Linear(4, width)

    path = save(Tiny(3), tmp_path / "tiny.safetensors", format="sparse")
    with pytest.raises(UserError, match="does not record its architecture"):
        load(path)
    loaded = load(path, builder=lambda arch: Tiny(3))
    assert loaded.masks["fc.weight"].all()
    with pytest.raises(UserError, match=r"tiny\.safetensors does not fit.*fc\.weight is \[3, 4\]"):
        load(path, builder=lambda arch: Tiny(5))
    stranger = Tiny(3)
    stranger.arch = {"name": "lenet_301", "num_classes": 10, "input_shape": [1, 28, 28]}
    with pytest.raises(UserError, match=r"stranger\.safetensors: cannot rebuild.*unknown model 'lenet_301'"):
        load(save(stranger, tmp_path / "stranger.safetensors"))


def test_bad_arguments(tmp_path):
    model = lenet()
    with pytest.raises(UserError, match="unknown export format"):
        save(model, tmp_path / "m", format="zip")
    with pytest.raises(UserError, match="unknown export dtype"):
        save(model, tmp_path / "m", dtype="int8")
    with pytest.raises(UserError, match="mask for 'fc9.weight'"):
        save(model, tmp_path / "m", masks={"fc9.weight": torch.ones(3, dtype=torch.bool)})
    assert not any(tmp_path.iterdir())


def test_bitmask_order_and_round_trip():
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 0] = mask[0, 3] = mask[1, 4] = True
    packed = pack_mask(mask)
    assert packed.tolist() == [0b0000_1001, 0b0000_0010]  # element 8j+i is bit i of byte j
    assert torch.equal(unpack_mask(packed, (2, 5)), mask)
    with pytest.raises(ValueError):
        unpack_mask(packed[:1], (2, 5))


def test_gap_encoding_with_fillers():
    flat = torch.zeros(60_000, dtype=torch.bool)
    flat[[0, 300, 59_999]] = True
    assert encode_gaps(flat, "gaps8").tolist()[:3] == [1, 0, 45]  # 300 = one filler of 255, then 45
    assert encode_gaps(flat, "gaps8").numel() == 3 + 1 + 59_699 // 255
    assert encode_gaps(flat, "gaps16").tolist() == [1, 300, 59_699]
    for enc in ("gaps8", "gaps16"):
        assert torch.equal(decode_gaps(encode_gaps(flat, enc), (60_000,), enc), flat)
    with pytest.raises(ValueError, match="past the end"):
        decode_gaps(encode_gaps(flat, "gaps16"), (59_999,), "gaps16")


def test_encoding_choice_follows_size():
    rng = np.random.default_rng(0)
    assert choose_encoding(torch.ones(10, 10, dtype=torch.bool)) == "dense"
    assert choose_encoding(torch.from_numpy(rng.random(100_000) > 0.5)) == "bitmask"
    assert choose_encoding(torch.from_numpy(rng.random(100_000) > 0.95)) == "gaps8"
    assert choose_encoding(torch.from_numpy(rng.random(1_000_000) > 0.999)) == "gaps16"
