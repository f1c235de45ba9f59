"""accelerate: the chosen layers are the measured winners (by the margin, at every example), the accelerated model
computes what the original does, and the results stay inference-only and out of saved files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit
from prunekit.common.errors import UserError
from prunekit.models import create_model
from prunekit.sparse_inference import SparseLinear, accelerate, restore, sparse_layers
from prunekit.sparse_inference import choose as accelerate_module
from tests.sparse_inference.test_layers import close


def lenet(sparsity: float = 0.95) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("lenet_300_100").eval()
    prunekit.prune(model, sparsity, scope="layerwise")
    return model


FAST = {"rounds": 1, "sample_seconds": 1e-4}


def test_outputs_match_and_the_original_is_untouched():
    model = lenet()
    examples = [torch.randn(1, 1, 28, 28), torch.randn(64, 1, 28, 28)]
    fast, report = accelerate(model, examples, threads=1, **FAST)
    assert all(type(m) is nn.Linear for m in model.modules() if isinstance(m, (nn.Linear, SparseLinear)))
    with torch.no_grad():
        for x in examples + [torch.randn(5, 1, 28, 28)]:
            assert close(fast(x), model(x))
    rows = {r["name"]: r for r in report["layers"]}
    assert set(rows) == {"fc1", "fc2", "fc3"}
    assert rows["fc3"]["chosen"] == "dense" and "not measured" in rows["fc3"]["notes"][0]  # the output layer is dense
    for name in ("fc1", "fc2"):
        row = rows[name]
        assert row["sparsity"] == pytest.approx(0.95, abs=1e-3)
        assert set(row["times_ms"]) >= {"dense", "torch_csr", "prunekit_csr"}
        assert all(len(t) == 2 for t in row["times_ms"].values())
        assert all(e <= 1e-5 for e in row["max_relative_error"].values())
        assert isinstance(fast.get_submodule(name), SparseLinear) == (row["chosen"] != "dense")
    assert report["threads"] == 1 and report["examples"] == [[1, 1, 28, 28], [64, 1, 28, 28]]
    assert report["clock"] == "thread CPU time"
    assert [r["shape"] for r in report["model"]["examples"]] == report["examples"]


def fake_times(times: dict[str, list[float]]):
    """A stand-in for time_interleaved that returns the given medians, one example after the other."""
    calls = {"n": 0}

    def timed(candidates, **_):
        i = calls["n"]
        calls["n"] += 1
        return {k: {"median_ms": times[k][i], "cpu_median_ms": times[k][i]} for k in candidates}

    return timed


@pytest.mark.parametrize(
    ("times", "chosen"),
    [
        ({"dense": [1.0, 1.0], "torch_csr": [0.95, 0.95], "prunekit_csr": [0.92, 0.5]}, "dense"),  # within the margin
        ({"dense": [1.0, 1.0], "torch_csr": [2.0, 0.3], "prunekit_csr": [0.3, 1.2]}, "dense"),  # not at every example
        ({"dense": [1.0, 1.0], "torch_csr": [0.85, 0.5], "prunekit_csr": [0.3, 0.6]}, "prunekit_csr"),  # best worst
        ({"dense": [1.0, 2.0], "torch_csr": [0.8, 1.0], "prunekit_csr": [0.85, 1.9]}, "torch_csr"),
    ],
)
def test_a_kernel_must_beat_dense_by_the_margin_at_every_example(monkeypatch, times, chosen):
    layer = nn.Linear(64, 32)
    with torch.no_grad():
        layer.weight.mul_(torch.rand_like(layer.weight) > 0.9)
    monkeypatch.setattr(accelerate_module, "time_interleaved", fake_times(times))
    _, report = accelerate(
        nn.Sequential(layer),
        [torch.randn(1, 64), torch.randn(8, 64)],
        kernels=["torch_csr", "prunekit_csr"],
        margin=0.1,
        inplace=True,
    )
    assert report["layers"][0]["chosen"] == chosen


def test_conv_networks_restore_and_single_layers():
    torch.manual_seed(0)
    model = create_model("resnet20", 10, (3, 16, 16)).eval()
    prunekit.prune(model, 0.9)
    x = torch.randn(2, 3, 16, 16)
    fast, report = accelerate(model, x, margin=0.0, kernels=["prunekit_csr"], **FAST)
    assert {r["type"] for r in report["layers"]} == {"Conv2d", "Linear"}
    with torch.no_grad():
        assert close(fast(x), model(x))
        restored = restore(fast)
        assert sparse_layers(restored) == []
        assert close(restored(x), model(x))
    single = SparseLinear.from_linear(nn.Linear(8, 4))
    assert isinstance(restore(single), nn.Linear)


def test_accelerated_models_are_not_saved_and_load_accelerates(tmp_path):
    model = lenet(0.97)
    fast, _ = accelerate(model, torch.randn(1, 1, 28, 28), margin=0.0, **FAST)
    if sparse_layers(fast):
        with pytest.raises(UserError, match="sparse-inference layer"):
            prunekit.save(fast, tmp_path / "no.safetensors")
    path = prunekit.save(model, tmp_path / "m.safetensors", format="sparse")
    loaded = prunekit.load(path, sparse_inference=True, batch_sizes=(1, 16), threads=1)
    report = loaded.sparse_inference_report
    assert report["examples"] == [[1, 1, 28, 28], [16, 1, 28, 28]] and len(report["layers"]) == 3
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        assert close(loaded(x), model(x))


def test_bad_arguments():
    model = lenet()
    with pytest.raises(UserError, match="unknown sparse kernels"):
        accelerate(model, torch.randn(1, 784), kernels=["mkl"])
    with pytest.raises(UserError, match="at least one example"):
        accelerate(model, [])
    with pytest.raises(UserError, match="margin in"):
        accelerate(model, torch.randn(1, 784), margin=1.0)
    with pytest.raises(UserError, match="records no input shape"):
        accelerate_module.example_inputs(nn.Linear(3, 3))
