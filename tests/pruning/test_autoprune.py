"""AutoPrune: gates learn sparsity, pruned weights stay exactly zero, resume is exact; config and Python API."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunekit
from prunekit.inspection import round_model
from prunekit.pruning.methods.autoprune import GatedWeight, gate_slope
from prunekit.runner import experiment
from tests.helpers import assert_resumes_exactly, tiny
from tests.user_nets import NETS, outputs


class TwoLayer(nn.Module):
    """A hand-written MLP on 20 features of which only the first 4 matter."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(20, 16)
        self.head = nn.Linear(16, 2)
        self.output_layer = "head"

    def forward(self, x):
        return self.head(F.relu(self.hidden(x)))


def test_gradients_follow_the_update_rule():
    w = torch.tensor([0.5, -2.0, 3.0], requires_grad=True)
    m = torch.tensor([0.1, 0.2, -0.3], requires_grad=True)
    t = GatedWeight.apply(w, m)
    assert torch.equal(t, torch.tensor([0.5, -2.0, 0.0]))
    t.backward(torch.tensor([1.0, 1.0, 1.0]))
    assert torch.equal(w.grad, torch.tensor([1.0, 1.0, 0.0]))  # a closed gate freezes its weight
    assert torch.equal(m.grad, torch.tensor([1.0, -1.0, 0.1]))  # sign of w, not its size; slope 0.1 when closed
    assert torch.equal(gate_slope(torch.tensor([1.0, 0.0, -1.0])), torch.tensor([1.0, 0.1, 0.1]))


def test_gates_learn_sparsity_on_a_tiny_problem_and_pruned_weights_stay_zero():
    torch.manual_seed(0)
    x = torch.randn(256, 20)
    y = (x[:, :4].sum(1) > 0).long()
    model = TwoLayer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gates = prunekit.autoprune(model, opt, penalty=3e-3, init=0.05)
    for _ in range(300):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            closed = model.hidden.weight * (gates.aux[0] > 0)
        assert torch.equal(F.linear(x[:3], closed, model.hidden.bias), model.hidden(x[:3]))  # gated forward
    assert gates.sparsity() > 0.5
    masks = gates.finish()
    w = model.hidden.weight
    assert torch.equal(w[~masks["hidden.weight"]], torch.zeros(int((~masks["hidden.weight"]).sum())))
    assert 1 - masks["hidden.weight"].float().mean() > 0.5
    kept_inputs = masks["hidden.weight"].any(0)
    assert kept_inputs[:4].all()  # the features that matter keep their weights
    assert (model(x).argmax(1) == y).float().mean() > 0.9
    assert "forward" not in vars(model.hidden)  # the module's own forward is back


def autoprune_cfg(**overrides):
    base = {
        "prune.method": "autoprune",
        "prune.rounds": None,
        "train.epochs": 1,
        "prune.retrain_epochs": 2,
        "prune.aux_penalty": 1e-2,
        "prune.aux_init": 0.02,
    }
    return tiny(**{**base, **overrides})


def test_autoprune_through_the_config_zeroes_what_it_prunes(tmp_path):
    summary = experiment.run(autoprune_cfg(), tmp_path, log=lambda _: None)
    assert summary["rounds"][1]["sparsity"] > 0.5 and summary["method"] == "autoprune"
    model, masks, _ = round_model(tmp_path, 1)
    for name, param in model.named_parameters():
        if name in masks:
            assert torch.count_nonzero(param[~masks[name]]) == 0


def test_autoprune_resumes_exactly(tmp_path, monkeypatch):
    cfg = autoprune_cfg(**{"prune.retrain_epochs": 3})
    assert_resumes_exactly(cfg, tmp_path, 3, monkeypatch)  # round 0, then two epochs of round 1, crash


@pytest.mark.parametrize("key, value", [("prune.aux_penalty", -1.0), ("prune.aux_init", 0.0)])
def test_bad_settings(key, value):
    with pytest.raises(prunekit.UserError, match=key):
        autoprune_cfg(**{key: value})


@pytest.mark.parametrize("name, build, example", NETS, ids=[n for n, _, _ in NETS])
def test_gates_reach_every_layer_kind_of_the_user_nets(name, build, example):
    """Attention, recurrent, transposed and shared layers read their gated weights too, not only Linear and Conv."""
    torch.manual_seed(0)
    model, inputs = build(), example()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gates = prunekit.autoprune(model, opt, penalty=1.0, init=0.005, ignore=[])
    for _ in range(3):
        loss = sum(o.float().pow(2).mean() for o in outputs(model, inputs))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(m.grad is not None for m in gates.aux)  # every covered tensor was read through its gate
    masks = gates.finish()
    assert gates.sparsity() > 0.5
    params = dict(model.named_parameters())
    for tensor_name, mask in masks.items():
        assert torch.count_nonzero(params[tensor_name][~mask]) == 0
    outputs(model, inputs)  # the modules' own forwards are back
