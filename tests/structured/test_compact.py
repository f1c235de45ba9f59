"""Compact files: thinner networks saved and rebuilt bit for bit, through prunekit.export.load, never widened."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

import prunekit
from prunekit.common.batches import call_model
from prunekit.common.errors import UserError
from prunekit.export import load, load_state_dict, read_metadata, save
from prunekit.export.compact import load_compact, narrow, narrowed_modules, save_compact
from prunekit.models import create_model
from prunekit.pruning.structured import prune_channels
from prunekit.pruning.structured.inputs import output_tensors
from tests.structured.channel_nets import CHANNEL_NETS
from tests.structured.nets import TinyConv
from tests.user_nets import NETS


def pruned(name: str, shape: tuple[int, int, int], fraction: float = 0.5) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, 10, shape)
    prune_channels(model, fraction, round_to=1)  # exact widths: the tests below name them
    model.train()
    model(torch.randn(4, *shape))  # move BatchNorm running statistics away from their defaults
    return model.eval()


@pytest.mark.parametrize(
    ("name", "shape"), [("lenet5", (1, 28, 28)), ("resnet20", (3, 16, 16)), ("vgg11", (3, 16, 16))]
)
def test_round_trip_is_exact(tmp_path, name, shape):
    model = pruned(name, shape)
    path = save_compact(model, tmp_path / "m.safetensors", metadata={"round": 3})
    for loaded in (load_compact(path), load(path)):
        assert not loaded.training
        assert loaded.arch == model.arch
        state, saved = loaded.state_dict(), model.state_dict()
        assert state.keys() == saved.keys()
        assert all(torch.equal(state[k], saved[k]) and state[k].dtype == saved[k].dtype for k in saved)
        x = torch.randn(3, *shape)
        assert torch.equal(loaded(x), model(x))
    meta = read_metadata(path)
    assert meta["format"] == "compact" and meta["extra"] == {"round": 3}
    assert meta["params"] == sum(p.numel() for p in model.parameters())


def test_file_is_smaller_and_the_generic_entry_points_work(tmp_path):
    model = pruned("resnet20", (3, 16, 16))
    dense = save(create_model("resnet20", 10, (3, 16, 16)), tmp_path / "dense.safetensors")
    path = save(model, tmp_path / "m.safetensors", format="compact")  # the export.save dispatch
    assert path.stat().st_size < 0.3 * dense.stat().st_size
    state, meta = load_state_dict(path)
    assert meta["modules"]["layer1.0.conv1"] == {
        "type": "Conv2d",
        "attrs": {"in_channels": 8, "out_channels": 8, "groups": 1},
    }
    assert torch.equal(state["fc.weight"], model.fc.weight)


def test_an_unpruned_model_records_no_modules(tmp_path):
    torch.manual_seed(0)
    model = create_model("lenet5")
    path = save_compact(model, tmp_path / "m.safetensors")
    assert read_metadata(path)["modules"] == {}
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(load(path)(x), model.eval()(x))


def test_half_precision(tmp_path):
    model = pruned("lenet5", (1, 28, 28))
    loaded = load(save_compact(model, tmp_path / "m.safetensors", dtype="fp16"))
    assert loaded.fc1.weight.dtype == torch.float32
    assert torch.equal(loaded.fc1.weight, model.fc1.weight.half().float())


PRUNABLE = [net for net in NETS + CHANNEL_NETS if net[0] not in ("recurrent_tagger", "shared_layer")]


@pytest.mark.parametrize("name,factory,example", PRUNABLE, ids=[n for n, _, _ in PRUNABLE])
def test_a_channel_pruned_user_model_round_trips_with_its_factory(tmp_path, name, factory, example):
    torch.manual_seed(0)
    model = factory()
    x = example()
    prunekit.prune_channels(model, 0.5, example_inputs=x)
    path = prunekit.save(model, tmp_path / "m.safetensors", format="compact")
    loaded = prunekit.load(path, builder=factory)
    assert [(n, type(m)) for n, m in loaded.named_modules()] == [(n, type(m)) for n, m in model.named_modules()]
    state, saved = loaded.state_dict(), model.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    model.eval()
    with torch.no_grad():
        a, b = output_tensors(call_model(loaded, x)), output_tensors(call_model(model, x))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_a_user_model_file_needs_its_factory(tmp_path):
    path = save_compact(TinyConv(), tmp_path / "m.safetensors")
    assert read_metadata(path)["arch"] is None
    with pytest.raises(UserError, match="does not record its architecture; pass builder="):
        load(path)
    loaded = load(path, builder=TinyConv)
    assert torch.equal(loaded.fc.weight, load_state_dict(path)[0]["fc.weight"])


def test_a_user_model_file_cannot_widen_what_the_factory_builds(tmp_path):
    model = TinyConv()
    prune_channels(model, 0.5, example_input=torch.zeros(1, 3, 8, 8))
    path = save_compact(model, tmp_path / "m.safetensors")

    def widen(meta):
        meta["modules"]["conv2"]["attrs"]["out_channels"] = 10**6

    rewrite_header(path, widen)
    with pytest.raises(UserError, match="corrupted: module 'conv2': out_channels=1000000 does not narrow 12"):
        load(path, builder=TinyConv)


def rewrite_header(path, edit) -> None:
    """Apply `edit` to the file's prunekit metadata, keeping the tensors."""
    tensors = safetensors.torch.load_file(path)
    meta = read_metadata(path)
    edit(meta)
    path.write_bytes(safetensors.torch.save(tensors, metadata={"prunekit": json.dumps(meta)}))


def test_a_header_that_widens_a_module_is_refused(tmp_path):
    path = save_compact(pruned("lenet5", (1, 28, 28)), tmp_path / "m.safetensors")

    def widen(meta):
        meta["modules"]["fc1"]["attrs"]["out_features"] = 10**9

    rewrite_header(path, widen)
    with pytest.raises(UserError, match=r"corrupted: module 'fc1': out_features=1000000000 does not narrow 120"):
        load(path)


def test_a_header_with_an_unknown_module_is_refused(tmp_path):
    path = save_compact(pruned("lenet5", (1, 28, 28)), tmp_path / "m.safetensors")
    rewrite_header(path, lambda meta: meta["modules"].update({"fc9": meta["modules"]["fc1"]}))
    with pytest.raises(UserError, match="corrupted: module 'fc9'"):
        load(path)


def test_tensors_that_disagree_with_the_module_table_are_refused(tmp_path):
    path = save_compact(pruned("lenet5", (1, 28, 28)), tmp_path / "m.safetensors")
    rewrite_header(path, lambda meta: meta["modules"].pop("fc2"))
    with pytest.raises(UserError, match="does not fit the architecture lenet5: fc2.weight is \\[42, 60\\]"):
        load(path)


def test_narrow_rebuilds_from_a_table_and_a_state_dict():
    """The runner's path: keep `narrowed_modules` in a checkpoint record, rebuild the thinner model on resume."""
    model = pruned("resnet20", (3, 16, 16))
    table = json.loads(json.dumps(narrowed_modules(model)))  # survives JSON
    fresh = create_model(**model.arch)
    narrow(fresh, table, {k: list(v.shape) for k, v in model.state_dict().items()})
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(fresh.eval()(x), model(x))
