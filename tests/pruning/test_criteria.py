"""Every criterion through every allocation, plus the definitions of GraSP and SynFlow checked by hand."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import CRITERIA, GRASP_TEMPERATURE, ScoreContext, needs_data
from prunekit.pruning.masks import apply_masks, dense_masks, prunable_names, sparsity

ALLOCATIONS = ["global", "uniform", "erk", "er", "snip"]


def tiny_lenet5() -> nn.Module:
    torch.manual_seed(0)
    return create_model("lenet5", 4, (1, 16, 16))


def batches(n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 16, 16, generator=g), torch.randint(4, (8,), generator=g)) for _ in range(n)]


def prune_once(model: nn.Module, masks: dict, criterion: str, alloc: str, target: float, seed: int = 0) -> dict:
    ctx = ScoreContext(model, masks, batches(), torch.Generator().manual_seed(seed))
    scores = CRITERIA.get(criterion)(ctx)
    for name, s in scores.items():
        assert torch.isfinite(s[masks[name]]).all(), name
    scope = "global" if alloc == "global" else "layerwise"
    ratio = CRITERIA.get("snip")(ctx) if alloc == "snip" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # layer-collapse warnings are tested in test_allocation
        return allocation.prune(scores, masks, target, scope=scope, allocation=alloc, ratio_scores=ratio)


@pytest.mark.parametrize("alloc", ALLOCATIONS)
@pytest.mark.parametrize("criterion", CRITERIA.names())
def test_contract_every_criterion_every_allocation(criterion, alloc):
    model = tiny_lenet5()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = prunable_names(model)
    assert "fc3.weight" not in names  # the output layer is ignored by default
    dense = dense_masks(model, names)
    total = sum(m.numel() for m in dense.values())

    first = prune_once(model, dense, criterion, alloc, 0.5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{criterion} changed {k}"
    assert sum(int(m.sum()) for m in first.values()) == round(0.5 * total)  # exact to one weight
    again = prune_once(tiny_lenet5(), dense_masks(model, names), criterion, alloc, 0.5)
    assert all(torch.equal(first[n], again[n]) for n in names)  # deterministic under the seed

    apply_masks(model, first)
    second = prune_once(model, first, criterion, alloc, 0.8)
    assert sum(int(m.sum()) for m in second.values()) == round(0.2 * total)
    for n in names:
        assert not torch.any(second[n] & ~first[n]), f"{n} revived a weight"
    apply_masks(model, second)
    assert torch.equal(model.fc3.weight, before["fc3.weight"])  # ignored tensor untouched
    assert sparsity(second) == pytest.approx(0.8, abs=1 / total)


def test_data_dependence_is_declared():
    assert {n for n in CRITERIA.names() if needs_data(CRITERIA.get(n))} == {"snip", "taylor", "grasp"}


def test_snip_is_gradient_times_weight_of_the_mean_loss():
    model = tiny_lenet5()
    masks = dense_masks(model, prunable_names(model))
    data = batches(3)
    scores = CRITERIA.get("snip")(ScoreContext(model, masks, data))
    model.eval()
    loss = sum(F.cross_entropy(model(x), y) for x, y in data) / 3
    loss.backward()
    for n, p in model.named_parameters():
        if n in masks:
            torch.testing.assert_close(scores[n], (p.grad * p).abs().detach())


def test_taylor_is_the_mean_squared_first_order_term():
    model = tiny_lenet5()
    masks = dense_masks(model, prunable_names(model))
    data = batches(2)
    scores = CRITERIA.get("taylor")(ScoreContext(model, masks, data))
    model.eval()
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters() if n in masks}
    for x, y in data:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for n, p in model.named_parameters():
            if n in masks:
                expected[n] += (p.grad * p).detach() ** 2 / 2
    for n in masks:
        torch.testing.assert_close(scores[n], expected[n])


def test_grasp_is_weight_times_hessian_gradient_product():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    masks = {"0.weight": torch.ones(3, 4, dtype=torch.bool), "2.weight": torch.ones(2, 3, dtype=torch.bool)}
    x, y = torch.randn(5, 4), torch.randint(2, (5,))
    scores = CRITERIA.get("grasp")(ScoreContext(model, masks, [(x, y)]))

    params = dict(model.named_parameters())
    names = list(masks)
    flat = torch.cat([params[n].detach().flatten() for n in names])
    shapes = [params[n].shape for n in names]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        w1, w2 = torch.split(theta, [math.prod(s) for s in shapes])
        h = torch.tanh(F.linear(x, w1.view(shapes[0]), params["0.bias"]))
        return F.cross_entropy(F.linear(h, w2.view(shapes[1]), params["2.bias"]) / GRASP_TEMPERATURE, y)

    g = torch.autograd.grad(loss(flat.requires_grad_()), flat)[0]
    hessian = torch.autograd.functional.hessian(loss, flat.detach())
    expected = flat.detach() * (hessian @ g)  # keep score = w * Hg = -(GraSP's removal score -w * Hg)
    got = torch.cat([scores[n].flatten() for n in names])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-12)


def test_grasp_prunes_the_highest_removal_score():
    """The paper removes the weights with the largest -w*Hg: they must be exactly the ones allocation drops."""
    model = tiny_lenet5()
    masks = dense_masks(model, prunable_names(model))
    scores = CRITERIA.get("grasp")(ScoreContext(model, masks, batches()))
    new = allocation.prune(scores, masks, 0.5, scope="global")
    removal = torch.cat([-scores[n].flatten() for n in masks])
    dropped = torch.cat([~new[n].flatten() for n in masks])
    assert removal[dropped].min() >= removal[~dropped].max()


def bias_free_mlp(widths: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b, bias=False), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    model.arch = {"input_shape": [widths[0]]}
    return model


def test_synflow_conserves_flow_layer_by_layer():
    """Without biases the abs-network is positively homogeneous, so each layer's scores sum to R (Tanaka et al.)."""
    torch.manual_seed(0)
    model = bias_free_mlp([6, 5, 4, 3])
    masks = {
        f"{i}.weight": torch.rand(p.shape) > 0.3
        for i, p in ((0, model[0].weight), (2, model[2].weight), (4, model[4].weight))
    }
    apply_masks(model, masks)
    scores = CRITERIA.get("synflow")(ScoreContext(model, masks))
    w = [model[i].weight.detach().double().abs() for i in (0, 2, 4)]
    r = (w[2] @ w[1] @ w[0] @ torch.ones(6, dtype=torch.float64)).sum()
    for name, s in scores.items():
        assert s.dtype == torch.float64
        assert float(s.sum()) == pytest.approx(float(r), rel=1e-9), name
        assert torch.all(s[~masks[name]] == 0)


def test_synflow_leaves_the_model_alone_and_uses_batchnorm_running_stats():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    model.arch = {"input_shape": [3]}
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.5, 2.0, 1.0]))
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 1.5]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.0]))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = {"0.weight": torch.ones(4, 3, dtype=torch.bool), "3.weight": torch.ones(2, 4, dtype=torch.bool)}
    scores = CRITERIA.get("synflow")(ScoreContext(model, masks))
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    w1 = model[0].weight.detach().double().abs().requires_grad_()
    w2 = model[3].weight.detach().double().abs().requires_grad_()
    d = {k: v.double().abs() for k, v in before.items()}
    h = (w1 @ torch.ones(3, dtype=torch.float64) - d["1.running_mean"]) / torch.sqrt(d["1.running_var"] + bn.eps)
    out = w2 @ torch.relu(h * d["1.weight"] + d["1.bias"]) + d["3.bias"]
    g1, g2 = torch.autograd.grad(out.sum(), [w1, w2])
    torch.testing.assert_close(scores["0.weight"], (w1 * g1).detach())
    torch.testing.assert_close(scores["3.weight"], (w2 * g2).detach())


def test_synflow_stays_finite_where_float32_overflows():
    torch.manual_seed(0)
    model = bias_free_mlp([64] * 81)  # the flow grows ~4x per layer: ~1e48 after 80 layers
    masks = dense_masks(model, [f"{i}.weight" for i in range(0, 160, 2)])
    with torch.no_grad():
        x = torch.ones(64)
        for i in range(0, 160, 2):
            x = model[i].weight.abs() @ x
    assert not torch.isfinite(x.sum())  # in float32 the abs-network's output overflows
    scores = CRITERIA.get("synflow")(ScoreContext(model, masks))
    assert all(torch.isfinite(s).all() and (s > 0).all() for s in scores.values())
    new = allocation.prune(scores, masks, 0.9, scope="global")
    assert sparsity(new) == pytest.approx(0.9, abs=1e-6)
