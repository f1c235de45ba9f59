"""ONNX export: onnxruntime reproduces PyTorch, the batch axis is dynamic, writes are atomic; latency is reported."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.export.onnx import (
    compare_latency,
    export_onnx,
    onnx_latency,
    onnx_session,
    read_onnx_metadata,
)
from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import ScoreContext, magnitude
from prunekit.pruning.masks import apply_masks, dense_masks, prunable_names


def pruned(name: str, shape: tuple[int, int, int], sparsity: float = 0.9) -> nn.Module:
    model = create_model(name, 10, shape)
    masks = dense_masks(model, prunable_names(model))
    apply_masks(model, allocation.prune(magnitude(ScoreContext(model, masks)), masks, sparsity))
    return model.eval()


@pytest.mark.parametrize("name, shape", [("resnet20", (3, 32, 32)), ("lenet5", (1, 28, 28))])
def test_onnxruntime_matches_pytorch(tmp_path, name, shape):
    model = pruned(name, shape)
    if name == "resnet20":  # non-trivial BatchNorm statistics, so folding them must be right
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = onnx_session(path, threads=1)
    for batch in (1, 3):
        x = torch.randn(batch, *shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == (batch, 10)
        assert abs(got - expected).max() < 1e-4
    assert read_onnx_metadata(path)["arch"] == model.arch


def test_thinner_model_without_arch_needs_a_shape(tmp_path):
    """A compact model is just an nn.Module with thinner layers: it exports given its input shape."""
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 6 * 6, 4)).train()
    with pytest.raises(UserError, match="input_shape"):
        export_onnx(model, tmp_path / "m.onnx")
    path = export_onnx(model, tmp_path / "m.onnx", (3, 8, 8))
    assert model.training  # exported in eval mode, then put back
    x = torch.randn(2, 3, 8, 8)
    got = onnx_session(path).run(None, {"input": x.numpy()})[0]
    assert abs(got - model.eval()(x).detach().numpy()).max() < 1e-5
    assert read_onnx_metadata(path)["input_shape"] == [3, 8, 8]


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no tracing here")


def test_failed_export_leaves_existing_file_untouched(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(UserError, match="cannot be exported to ONNX"):
        export_onnx(Untraceable(), target, (4,))
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_latency_reports_both_runtimes_and_restores_threads(tmp_path):
    model = create_model("lenet_300_100")
    before = torch.get_num_threads()
    path = export_onnx(model, tmp_path / "m.onnx")
    single = onnx_latency(path, (1, 28, 28), 4, threads=1, warmup=1, repeats=5)
    assert single["threads"] == 1 and single["repeats"] == 5
    assert 0 < single["min_ms"] <= single["p10_ms"] <= single["median_ms"] <= single["p90_ms"] <= single["max_ms"]
    report = compare_latency(model, batch_sizes=(1, 5), threads=1, warmup=1, repeats=3)
    assert [row["batch_size"] for row in report["batches"]] == [1, 5]
    assert all(row["pytorch_ms"] > 0 and row["onnxruntime_ms"] > 0 for row in report["batches"])
    assert report["threads"] == 1 and torch.get_num_threads() == before
    with pytest.raises(UserError, match="repeats"):
        onnx_latency(path, (1, 28, 28), 1, repeats=0)


def test_compact_resnet20_exports_to_onnx_and_matches(tmp_path):
    """A channel-pruned ResNet-20, saved compact and loaded back, runs in onnxruntime within 1e-4 of PyTorch."""
    import onnxruntime as ort

    from prunekit.export import load
    from prunekit.export.compact import save_compact
    from prunekit.pruning.structured import prune_channels

    torch.manual_seed(0)
    model = create_model("resnet20", 10, (3, 32, 32))
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    prune_channels(model, 0.5, criterion="l1_filter")
    thin = load(save_compact(model, tmp_path / "r20.safetensors"))
    dense = create_model("resnet20", 10, (3, 32, 32))
    assert sum(p.numel() for p in thin.parameters()) < 0.4 * sum(p.numel() for p in dense.parameters())
    path = export_onnx(thin, tmp_path / "r20.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = thin(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert abs(got - expected).max() < 1e-4
