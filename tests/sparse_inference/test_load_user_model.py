"""prunekit.load(path, sparse_inference=True, example_inputs=...) works for a user's model (no recorded shape)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit
from prunekit.common.errors import UserError


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_sparse_inference_on_a_loaded_user_model(tmp_path):
    torch.manual_seed(0)
    net = Mlp()
    masks = prunekit.prune(net, 0.9, include_output=True, scope="layerwise")
    path = tmp_path / "m.safetensors"
    prunekit.save(net, path, format="sparse", masks=masks)
    x = torch.randn(4, 64)
    with pytest.raises(UserError, match="example_inputs="):
        prunekit.load(path, builder=lambda arch: Mlp(), sparse_inference=True)
    model = prunekit.load(path, builder=lambda arch: Mlp(), sparse_inference=True, example_inputs=[x[:1], x])
    report = model.sparse_inference_report
    assert [row["name"] for row in report["layers"]] == ["a", "b"]
    assert [row["shape"] for row in report["layers"]] == [[128, 64], [10, 128]]
    with torch.no_grad():
        assert torch.allclose(model(x), net.eval()(x), atol=1e-5)
