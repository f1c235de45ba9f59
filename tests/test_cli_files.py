"""Files through the real CLI: hostile and broken files exit 2 with one line, real files inspect and export."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import onnx
import pytest
import torch

from prunekit import config, export
from prunekit.cli import main
from prunekit.common.errors import UserError
from prunekit.export.onnx import onnx_session
from prunekit.inspection import round_model
from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import ScoreContext, magnitude
from prunekit.pruning.masks import apply_masks, dense_masks, prunable_names
from prunekit.runner.experiment import run


class Payload:
    """Unpickling this runs a shell command: the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("prunekit: error:") and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    cfg = config.from_dict(
        {
            "name": "tiny-files",
            "model": {"name": "lenet_300_100"},
            "data": {"name": "synthetic", "shape": [1, 8, 8], "classes": 4, "train_size": 256, "test_size": 64},
            "train": {"epochs": 1, "batch_size": 32, "lr": 0.01},
            "prune": {"method": "oneshot", "sparsity": [0.9], "retrain_epochs": 1},
        }
    )
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run(cfg, out, log=lambda _: None)
    return out


@pytest.fixture
def sparse_file(tmp_path) -> Path:
    model = create_model("lenet_300_100", 4, (1, 8, 8))
    masks = dense_masks(model, prunable_names(model))
    masks = allocation.prune(magnitude(ScoreContext(model, masks)), masks, 0.9, scope="layerwise")
    apply_masks(model, masks)
    return export.save(model, tmp_path / "model.safetensors", format="sparse", masks=masks)


@pytest.mark.parametrize("kind", ["pickle", "torch_zip"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path, capsys, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    obj = {"fc1.weight": torch.ones(2), "evil": Payload(marker)}
    if kind == "pickle":
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)
    assert main(["inspect", str(path)]) == 2
    assert "never unpickles" in one_line_error(capsys)
    assert main(["export", str(path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    assert str(path) in one_line_error(capsys)
    with pytest.raises(UserError, match="never unpickles"):
        export.load(path)
    assert not marker.exists() and not (tmp_path / "m.onnx").exists()
    pickle.loads(pickle.dumps(Payload(tmp_path / "control")))  # the payload is live: the refusals mattered
    assert (tmp_path / "control").exists()


@pytest.mark.parametrize("keep", [0.5, 20])
def test_truncated_safetensors_exits_2(sparse_file, tmp_path, capsys, keep):
    data = sparse_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    assert main(["inspect", str(cut)]) == 2
    err = one_line_error(capsys)
    assert "truncated" in err or "corrupted" in err
    assert main(["export", str(cut), "--format", "dense", "--out", str(tmp_path / "d.safetensors")]) == 2
    one_line_error(capsys)


def test_inspect_sparse_file_lists_layers_and_sparsity(sparse_file, capsys):
    assert main(["inspect", str(sparse_file)]) == 0
    text = capsys.readouterr().out
    assert "fc1.weight" in text and "fc2.weight" in text and "sparsity 90.00%" in text
    assert main(["inspect", str(sparse_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "sparse" and info["sparsity"] == pytest.approx(0.9, abs=1e-5)
    assert [layer["name"] for layer in info["layers"]] == ["fc1.weight", "fc2.weight"]
    assert info["file_bytes"] < 0.2 * info["dense_bytes"]


def test_inspect_latency(sparse_file, capsys):
    assert main(["inspect", str(sparse_file), "--json", "--latency"]) == 0
    latency = json.loads(capsys.readouterr().out)["latency"]
    assert [row["batch_size"] for row in latency["batches"]] == [1, 32] and latency["threads"] == 2
    assert all(row["pytorch_ms"] > 0 and row["onnxruntime_ms"] > 0 for row in latency["batches"])
    assert main(["inspect", str(sparse_file), "--latency"]) == 0
    assert "onnxruntime" in capsys.readouterr().out


def test_export_run_to_every_format_loads_back(tiny_run, tmp_path, capsys):
    model, masks, _ = round_model(tiny_run, None)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        expected = model(x)
    for fmt in ("dense", "sparse", "onnx"):
        out = tmp_path / f"model.{fmt}"
        assert main(["export", str(tiny_run), "--format", fmt, "--out", str(out)]) == 0, capsys.readouterr().err
        if fmt == "onnx":
            onnx.checker.check_model(onnx.load(out), full_check=True)
            got = torch.from_numpy(onnx_session(out).run(None, {"input": x.numpy()})[0])
            assert torch.allclose(got, expected, atol=1e-4)
            continue
        loaded = export.load(out)
        with torch.no_grad():
            assert torch.equal(loaded(x), expected)
        if fmt == "sparse":
            assert loaded.masks.keys() == masks.keys()
            assert all(torch.equal(loaded.masks[n], masks[n]) for n in masks)
    assert main(["export", str(tmp_path / "model.sparse"), "--format", "onnx", "--out", str(tmp_path / "f.onnx")]) == 0
    assert (tmp_path / "f.onnx").stat().st_size > 0


def test_export_bad_round_and_bad_options_exit_2(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["export", str(tiny_run), "--round", "7", "--format", "dense", "--out", str(out)]) == 2
    assert "no finished round 7" in one_line_error(capsys)
    assert main(["export", str(tiny_run), "--format", "onnx", "--dtype", "float16", "--out", str(out)]) == 2
    assert "float32" in one_line_error(capsys)
    assert not out.exists()
    assert main(["export", str(tiny_run), "--round", "1", "--format", "dense", "--out", str(out)]) == 0
