"""AMC's least-squares refit (reconstruct.py) by value: a refit layer's weights are the least-squares solution computed
independently here (torch.linalg.lstsq on the same sampled rows), removed input columns are zero, the refit beats
masking alone on held-out inputs, the dense weights come back, and layers that cannot be refit are named."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.pruning.amc import amc_search
from prunekit.pruning.amc.reconstruct import Reconstructor
from tests.structured.nets import TinyConv, example


def data(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, *example().shape[1:], generator=gen), torch.zeros(8, dtype=torch.long)) for _ in range(n)]


def test_linear_refit_is_the_least_squares_solution() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(6, 3)
    model = nn.Sequential(layer)
    batches = [(torch.randn(40, 6), torch.zeros(40)) for _ in range(2)]
    rec = Reconstructor(model, {"0": layer}, batches)
    keep = torch.tensor([True, False, True, True, False, True])
    refit = rec.solve(layer, keep)
    x = torch.cat([b[0] for b in batches]).double()
    y = x @ layer.weight.double().T  # the dense output without its bias
    expected = torch.linalg.lstsq(x[:, keep], y).solution.T
    assert torch.all(refit[:, ~keep] == 0)
    torch.testing.assert_close(refit[:, keep].double(), expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(refit[:, keep], layer.weight[:, keep])  # it moved the kept weights


def test_conv_refit_on_unfolded_patches_beats_masking_on_held_out_inputs() -> None:
    torch.manual_seed(1)
    model = TinyConv().eval()
    dense = copy.deepcopy(model)
    rec = Reconstructor(model, {"conv2": model.conv2}, data(6, seed=0), points=20)
    keep = torch.zeros(8, dtype=torch.bool)
    keep[[0, 2, 3, 6]] = True
    held_out = torch.cat([b[0] for b in data(2, seed=9)])

    def conv2_input(net: nn.Module) -> torch.Tensor:
        return F.relu(net.bn1(net.conv1(held_out)))

    with torch.no_grad():
        target = dense.conv2(conv2_input(dense))
        masked = model.conv2(conv2_input(model) * keep.view(1, -1, 1, 1).float())
        rec.apply({model.conv2: keep})
        refit = model.conv2(conv2_input(model) * keep.view(1, -1, 1, 1).float())
    assert torch.all(model.conv2.weight[:, ~keep] == 0)
    masked_error, refit_error = F.mse_loss(masked, target), F.mse_loss(refit, target)
    assert refit_error < 0.7 * masked_error, (refit_error, masked_error)
    rec.restore()
    assert torch.equal(model.conv2.weight, dense.conv2.weight)


def test_unsupported_layers_are_named_and_left_alone() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.ConvTranspose2d(4, 2, 3))
    rec = Reconstructor(model, {"0": model[0], "1": model[1]}, [torch.randn(2, 4, 8, 8)])
    assert set(rec.summary()["skipped"]) == {"0", "1"} and rec.summary()["refit"] == {}
    assert "groups=2" in rec.skipped["0"]


def test_the_search_evaluates_refit_candidates_and_leaves_the_model_as_it_was() -> None:
    torch.manual_seed(2)
    model = TinyConv().eval()
    before = copy.deepcopy(model.state_dict())
    reference, inputs = copy.deepcopy(model), torch.cat([b[0] for b in data(2, seed=7)])

    def evaluate(net: nn.Module) -> float:  # a smooth fidelity in (0, 1]: 1 when the outputs are the dense ones
        with torch.no_grad():
            return 1.0 / (1.0 + float(F.mse_loss(net(inputs), reference(inputs))))

    args = {"budget": {"flops": 0.4}, "episodes": 6, "warmup": 6, "example_input": example(), "seed": 0}
    plain = amc_search(model, evaluate, **args)
    refit = amc_search(model, evaluate, refit=data(4, seed=3), **args)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert refit.log["refit"]["refit"] == {"conv2": 4 * 8 * 10, "fc": 4 * 8}  # 10 positions per image; Linear rows
    kept = [row["kept"] for row in plain.log["history"]]
    assert kept == [row["kept"] for row in refit.log["history"]]  # the same random warm-up policies
    better = sum(
        r["accuracy"] >= p["accuracy"] for r, p in zip(refit.log["history"], plain.log["history"], strict=True)
    )
    assert better >= 5 and refit.log["rewards"]["all"]["mean"] > plain.log["rewards"]["all"]["mean"]
    with pytest.raises(Exception, match="channel"):
        amc_search(model, evaluate, structure="unstructured", refit=data(1, seed=3), **args)
