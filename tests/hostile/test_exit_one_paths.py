"""One test per exit-1 path and unbounded cost of issue 27 that is not a property of a reader suite.

Configs: enumerated settings match exactly, a rate that underflows, a list of sparsities past the round bound, a
network too large for the memory available. The command line: an argument that is not UTF-8, torch's allocator
failing. Model files: an `Infinity` width, deep metadata, 13 million empty objects, a mask on a 1-D tensor.
"""

from __future__ import annotations

import json
import resource
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml

import prunekit
from prunekit.common.errors import UserError
from tests.helpers import tiny
from tests.hostile.harness import cli
from tests.hostile.model_files import join, make_files, split


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("files"))


def _config(tmp_path: Path, **prune: object) -> Path:
    cfg = tiny(**{"train.epochs": 1}).to_dict()
    cfg["prune"] = {"method": "imp", "rounds": 1, **prune}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("prune", "key"),
    [
        ({"rewind": "init\n"}, "prune.rewind"),
        ({"rewind": "lr\n"}, "prune.rewind"),
        ({"rewind": "epoch:1\n"}, "prune.rewind"),
        ({"method": "oneshot", "pattern": "2:4\n", "sparsity": 0.5, "rounds": None}, "prune.pattern"),
        ({"rate": 1.0e-300, "rounds": None}, "prune.rate"),
        ({"method": "oneshot", "sparsity": [0.5] * 10_000, "rounds": None}, "prune.sparsity"),
    ],
)
def test_settings_match_exactly_and_bounds_hold(tmp_path, prune, key) -> None:
    rc, err = cli(["run", _config(tmp_path, **prune), "--out", tmp_path / "run"])
    assert rc == 2 and key in err, err
    assert not (tmp_path / "run").exists()


def test_the_exact_settings_still_run(tmp_path) -> None:
    from prunekit.config import from_dict

    for rewind in ("init", "lr", "epoch:1", "finetune"):
        assert from_dict({"prune": {"method": "imp", "rewind": rewind}}).prune.rewind == rewind
    assert from_dict({"prune": {"method": "imp", "rate": 0.5, "sparsity": 0.75}}).prune.rate == 0.5
    assert len(from_dict({"prune": {"method": "oneshot", "sparsity": [0.5] * 1000}}).prune.sparsities) == 1000


def test_an_argument_that_is_not_utf8_is_one_line(tmp_path) -> None:
    out = str(tmp_path) + "/r_\udcff"
    rc, err = cli(["run", _config(tmp_path), "--out", out])
    assert rc == 2 and "not UTF-8" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "c.yaml"]


def test_a_network_too_large_for_the_memory_is_refused_before_training(tmp_path, monkeypatch) -> None:
    from prunekit.runner import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)  # 1 MiB left
    rc, err = cli(["run", _config(tmp_path), "--out", tmp_path / "run"])
    assert rc == 2 and "out of memory" in err and "GiB" in err, err
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**40)
    rc, _ = cli(["run", _config(tmp_path), "--out", tmp_path / "run2"])
    assert rc == 0


def test_torch_allocator_failures_are_the_out_of_memory_message(tmp_path, monkeypatch) -> None:
    from prunekit import cli as cli_mod

    def fail(args: object) -> int:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 1258291200")

    monkeypatch.setitem(cli_mod.COMMANDS, "run", fail)
    rc, err = cli(["run", _config(tmp_path), "--out", tmp_path / "run"])
    assert rc == 2 and "out of memory" in err
    monkeypatch.setitem(cli_mod.COMMANDS, "run", lambda args: 1 // 0)
    assert cli_mod.main(["run", str(_config(tmp_path))]) == 1  # other errors stay bugs


def _edited(source: Path, target: Path, edit) -> Path:
    header, body = split(source.read_bytes())
    meta = json.loads(header["__metadata__"]["prunekit"])
    text = edit(meta)
    header["__metadata__"]["prunekit"] = text if isinstance(text, str) else json.dumps(meta)
    target.write_bytes(join(header, body))
    return target


@pytest.mark.parametrize(
    ("kind", "edit", "fragment"),
    [
        ("compact", lambda m: m["modules"]["fc1"]["attrs"].__setitem__("out_features", float("inf")), "finite"),
        ("compact", lambda m: m["modules"]["fc1"]["attrs"].__setitem__("out_features", 1e300), "finite"),
        ("compact", lambda m: m["tensors"]["fc1.weight"].__setitem__("shape", [float("inf"), 64]), "shape"),
        ("compact", lambda m: m["tensors"]["fc1.weight"].__setitem__("shape", [10**30, 64]), "shape"),
        ("sparse", lambda m: m["tensors"]["fc1.weight"].__setitem__("nnz", float("nan")), "finite"),
        ("dense", lambda m: m["arch"].__setitem__("input_shape", [1, 8, 8.5]), "input_shape"),
        ("dense", lambda m: m["arch"].__setitem__("args", json.loads("[" * 50 + "]" * 50)), "nested"),
        ("dense", lambda m: json.dumps(m)[:-1] + ',"x":' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    ],
)
def test_crafted_metadata_is_one_line_in_inspect_export_and_load(files, tmp_path, kind, edit, fragment) -> None:
    path = _edited(files[kind], tmp_path / "bad.safetensors", edit)
    for argv in (["inspect", path], ["export", path, "--format", "dense", "--out", tmp_path / "o.safetensors"]):
        rc, err = cli(argv)
        assert rc == 2 and fragment in err, (argv[0], err)
    with pytest.raises(UserError):
        prunekit.load(path)


def test_millions_of_empty_objects_are_refused_cheaply(files, tmp_path) -> None:
    """13 million empty JSON objects (39 MB) took 10 s and 2.2 GB before the refusal; now < 1 s, < 300 MB."""
    text = json.dumps({"format": "dense", "version": 1})[:-1] + ',"x":[' + ",".join(["{}"] * 13_000_000) + "]}"
    path = _edited(files["dense"], tmp_path / "many.safetensors", lambda m: text)
    assert path.stat().st_size > 38_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    with pytest.raises(UserError, match="more than"):
        prunekit.export.read_metadata(path)
    assert time.process_time() - start < 1.0
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 < 300 * 2**20
    smaller = _edited(files["dense"], tmp_path / "m2.safetensors", lambda m: text[:15_000_000] + "]}")
    start = time.process_time()
    with pytest.raises(UserError, match="objects and lists"):
        prunekit.export.read_metadata(smaller)
    assert time.process_time() - start < 1.0


def test_a_mask_on_a_1d_tensor_inspects_and_exports(tmp_path) -> None:
    model = prunekit.create_model("lenet_300_100", 4, (1, 8, 8))
    gen = torch.Generator().manual_seed(0)
    masks = {"fc1.weight": torch.rand(300, 64, generator=gen) > 0.5, "fc1.bias": torch.arange(300) % 3 == 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = prunekit.save(model, tmp_path / "m.safetensors", format="sparse", masks=masks)
    rc, _ = cli(["inspect", path, "--json"])
    assert rc == 0
    info = prunekit.inspection.describe(path)
    bias = next(layer for layer in info["layers"] if layer["name"] == "fc1.bias")
    assert bias["sparsity"] == pytest.approx(200 / 300, abs=1e-6)
    assert bias["units_pruned"] == pytest.approx(200 / 300, abs=1e-6)
    assert cli(["export", path, "--format", "dense", "--out", tmp_path / "d.safetensors"])[0] == 0
