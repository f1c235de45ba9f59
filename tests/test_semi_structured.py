"""2:4 layers on sparse tensor cores: which Linear layers qualify (any device), the CPU refusal, and on CUDA the
same outputs as the dense half-precision model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit
from prunekit.common.errors import UserError
from prunekit.sparse_inference.semi_structured import semi_structured_report, to_semi_structured


def two_four_model(dtype: torch.dtype = torch.float16) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 96), nn.Linear(96, 64))
    prunekit.prune(model, 0.5, pattern="2:4", include_output=True)
    return model.to(dtype)


def test_report_names_each_reason():
    model = two_four_model()
    report = semi_structured_report(model)
    assert report["0"] is None and report["2"] is None  # [64, 128] and [96, 64]
    assert report["3"] == "shape 64x96 is not a multiple of 32x64"
    with torch.no_grad():
        model[2].weight[0, :4] = 1.0  # four kept in one group
    assert semi_structured_report(model)["2"] == "weights are not 2:4 sparse along the inputs"
    assert "dtype float32" in semi_structured_report(two_four_model(torch.float32))["0"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cpu_refuses_with_one_line(tmp_path):
    with pytest.raises(UserError, match="CUDA"):
        to_semi_structured(two_four_model())
    path = prunekit.save(two_four_model(torch.float32), tmp_path / "m.safetensors", format="sparse")
    with pytest.raises(UserError, match="semi_structured=True needs a CUDA device"):
        prunekit.load(path, builder=lambda _: two_four_model(torch.float32), semi_structured=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="semi-structured sparse kernels need CUDA")
def test_cuda_semi_structured_matches_dense_half(tmp_path):
    model = two_four_model().cuda().eval()
    x = torch.randn(64, 128, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        dense = model(x)
        converted = to_semi_structured(model)
        sparse = model(x)
    assert converted == ["0", "2"]
    assert isinstance(model[0].weight, torch.sparse.SparseSemiStructuredTensor)
    torch.testing.assert_close(sparse, dense, rtol=1e-2, atol=1e-2)
    path = prunekit.save(two_four_model(torch.float32), tmp_path / "m.safetensors", format="sparse")
    loaded = prunekit.load(path, builder=lambda _: two_four_model(torch.float32), semi_structured=True)
    assert loaded.semi_structured == ["0", "2"] and loaded[0].weight.dtype == torch.float16
