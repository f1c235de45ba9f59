"""Pruning at initialisation and STR: their plans, and their rounds run end to end on tiny synthetic data."""

import warnings
from pathlib import Path

import pytest
import torch

from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import CRITERIA, ScoreContext
from prunekit.pruning.masks import dense_masks, prunable_names
from prunekit.pruning.methods import METHODS
from prunekit.pruning.methods.hooks import HookContext, cubic_sparsity
from prunekit.pruning.methods.soft_threshold import STATE_KEY, SoftThreshold, sparse_weight
from prunekit.runner import experiment
from prunekit.store import checkpoint
from prunekit.train.optim import make_optimizer
from tests.helpers import run_interrupted, tiny

SIZES = {"fc1.weight": 19200, "fc2.weight": 30000, "fc3.weight": 400}


def run(cfg, out: Path) -> dict:
    return experiment.run(cfg, out, log=lambda _: None)


def round_file(out: Path, k: int):
    return checkpoint.load(out / "checkpoints" / f"round_{k}.safetensors")


def test_at_init_plan():
    cfg = tiny(**{"prune.method": "at_init", "prune.sparsity": [0.8, 0.95], "prune.iterations": 7, "train.epochs": 5})
    plans = METHODS.get("at_init")(cfg, SIZES)
    assert (plans[0].base, plans[0].epochs, plans[0].weights, plans[0].sparsity) == (None, 0, "init", None)
    assert [(p.index, p.base, p.sparsity, p.weights, p.epochs, p.iterations) for p in plans[1:]] == [
        (1, 0, 0.8, "keep", 5, 7),
        (2, 0, 0.95, "keep", 5, 7),
    ]
    assert METHODS.get("at_init")(cfg.replace(**{"prune.retrain_epochs": 2}), SIZES)[1].epochs == 2


def test_str_plan():
    plans = METHODS.get("str")(tiny(**{"prune.method": "str", "train.epochs": 4}), SIZES)
    assert [(p.index, p.base, p.sparsity, p.epochs, p.during) for p in plans] == [
        (0, None, None, 0, None),
        (1, 0, None, 4, "str"),
    ]


@pytest.mark.parametrize("step", [0, 10, 11, 37, 64, 109, 110, 500])
def test_cubic_schedule_matches_the_formula(step):
    s_i, s_f, t0, n_dt = 0.1, 0.9, 10, 100
    if step <= t0:
        expected = s_i
    elif step >= t0 + n_dt:
        expected = s_f
    else:
        expected = s_f + (s_i - s_f) * (1 - (step - t0) / n_dt) ** 3
    assert cubic_sparsity(step, s_i, s_f, t0, t0 + n_dt) == pytest.approx(expected, abs=1e-12)


def test_cubic_schedule_is_monotone():
    values = [cubic_sparsity(t, 0.0, 0.9, 5, 50) for t in range(60)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 0.9


def test_at_init_prunes_the_initial_weights_then_trains(tmp_path):
    cfg = tiny(
        **{"prune.method": "at_init", "prune.sparsity": [0.5, 0.9], "prune.scope": "layerwise", "train.epochs": 1}
    )
    summary = run(cfg, tmp_path)
    assert [(r["round"], r["epochs"]) for r in summary["rounds"]] == [(0, 0), (1, 1), (2, 1)]
    assert [r["sparsity"] for r in summary["rounds"]] == pytest.approx([0.0, 0.5, 0.9], abs=1e-5)
    init, _, _, _ = round_file(tmp_path, 0)
    torch.manual_seed(0)
    fresh = create_model("lenet_300_100", 4, (1, 8, 8)).state_dict()
    assert all(torch.equal(init[k], fresh[k]) for k in fresh)  # round 0 is the untrained initialisation
    # uniform: every tensor keeps (1 - s) of its 19,200 / 30,000 / 400 weights
    kept = {1: dict(zip(("fc1.weight", "fc2.weight", "fc3.weight"), (9600, 15000, 200), strict=True))}
    kept[2] = dict(zip(("fc1.weight", "fc2.weight", "fc3.weight"), (1920, 3000, 40), strict=True))
    for k in (1, 2):
        state, masks, _, _ = round_file(tmp_path, k)
        for n, m in masks.items():
            top = torch.topk(init[n].abs().flatten(), kept[k][n]).indices
            expected = torch.zeros(m.numel(), dtype=torch.bool)
            expected[top] = True
            assert torch.equal(m.flatten(), expected), n  # the largest *initial* weights of each tensor survive
            assert torch.all(state[n][~m] == 0) and not torch.equal(state[n], init[n] * m)  # trained, still sparse


def test_synflow_iterations_avoid_layer_collapse(tmp_path):
    cfg = tiny(
        **{
            "prune.method": "at_init",
            "prune.criterion": "synflow",
            "prune.sparsity": 0.99,
            "prune.iterations": 20,
            "prune.retrain_epochs": 0,
            "data.shape": [1, 16, 16],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no collapse warning either
        summary = run(cfg, tmp_path)
    assert summary["final_sparsity"] == pytest.approx(0.99, abs=1e-5)
    assert all(layer["sparsity"] < 1.0 for layer in summary["layers"])

    torch.manual_seed(0)  # the same network pruned in one shot loses its whole first layer
    model = create_model("lenet_300_100", 4, (1, 16, 16))
    masks = dense_masks(model, prunable_names(model, []))
    with pytest.warns(UserWarning, match="layer collapse"):
        one_shot = allocation.prune(CRITERIA.get("synflow")(ScoreContext(model, masks)), masks, 0.99)
    assert not one_shot["fc1.weight"].any()


def str_setup(s_init: float = -3.0, **overrides):
    cfg = tiny(
        **{"prune.method": "str", "train.optimizer": "sgd", "train.lr": 0.1, "train.weight_decay": 0.05, **overrides}
    )
    torch.manual_seed(0)
    model = create_model("lenet_300_100", 4, (1, 8, 8))
    masks = dense_masks(model, prunable_names(model, []))
    optimizer = make_optimizer(model.parameters(), cfg.train)
    ctx = HookContext(model, masks, optimizer, cfg, None, 8, 0, prune_to=lambda _: pytest.fail("STR never prunes"))
    return model, masks, optimizer, ctx


def test_str_hook_trains_thresholds_and_ends_with_a_plain_sparse_model():
    model, masks, optimizer, ctx = str_setup()
    keys = list(model.state_dict())
    hook = SoftThreshold(ctx)
    with torch.no_grad():
        hook.s.fill_(-3.0)
    assert optimizer.param_groups[-1]["params"] == [hook.s] and optimizer.param_groups[-1]["weight_decay"] == 0.05
    x, y = torch.randn(32, 1, 8, 8), torch.randint(4, (32,))
    latent = model.fc1.weight.detach().clone()
    expected = torch.nn.functional.linear(x.flatten(1), sparse_weight(latent, torch.tensor(-3.0)), model.fc1.bias)
    torch.testing.assert_close(model.fc1(x.flatten(1)), expected)  # the layer runs on S(W, s)
    before = hook.s.detach().clone()
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not torch.equal(hook.s.detach(), before)  # thresholds learn
    assert torch.equal(optimizer.state[hook.s][STATE_KEY], hook.s.detach())  # and ride in the optimizer state
    assert list(model.state_dict()) == keys  # state_dict stays plain during training
    effective = {n: sparse_weight(dict(model.named_parameters())[n], hook.s[i]).detach() for i, n in enumerate(masks)}
    hook.finish()
    for n, p in model.named_parameters():
        if n in masks:
            assert torch.equal(p.detach(), effective[n])
            assert torch.equal(masks[n], p != 0)
    assert any(not m.all() for m in masks.values())
    assert all("forward" not in vars(m) for m in model.modules())  # the original forwards are back


def test_str_reparameterises_convolutions_too():
    torch.manual_seed(0)
    model = create_model("lenet5", 4, (1, 16, 16))
    masks = dense_masks(model, prunable_names(model))
    cfg = tiny(**{"train.weight_decay": 0.01})
    optimizer = make_optimizer(model.parameters(), cfg.train)
    hook = SoftThreshold(HookContext(model, masks, optimizer, cfg, None, 8, 0, prune_to=lambda _: {}))
    with torch.no_grad():
        hook.s.fill_(-2.5)
    x = torch.randn(2, 1, 16, 16)
    expected = torch.nn.functional.conv2d(
        x, sparse_weight(model.conv1.weight, torch.tensor(-2.5)), model.conv1.bias, padding=2
    )
    torch.testing.assert_close(model.conv1(x), expected)
    hook.finish()
    assert 0 < float(masks["conv1.weight"].float().mean()) < 1
    torch.testing.assert_close(model.conv1(x), expected)  # the plain model now computes the same


def test_str_keeps_pruned_weights_pruned():
    model, masks, optimizer, ctx = str_setup()
    masks["fc2.weight"][:, :50] = False
    hook = SoftThreshold(ctx)
    hook.finish()
    assert not masks["fc2.weight"][:, :50].any()


def test_str_run_reports_the_sparsity_it_learned(tmp_path):
    cfg = tiny(**{"prune.method": "str", "train.optimizer": "sgd", "train.lr": 0.1, "train.weight_decay": 0.05})
    summary = run(cfg, tmp_path)
    state, masks, record, _ = round_file(tmp_path, 1)
    assert record["sparsity"] > 0.01 and summary["final_sparsity"] == record["sparsity"]
    for n, m in masks.items():
        assert torch.equal(m, state[n] != 0), n


def test_str_resume_after_an_epoch_gives_the_same_result(tmp_path, monkeypatch):
    cfg = tiny(**{"prune.method": "str", "train.epochs": 3, "train.weight_decay": 0.05})  # adam
    run(cfg, tmp_path / "straight")
    run_interrupted(cfg, tmp_path / "resumed", 3, monkeypatch)  # round 0, then round 1 after epochs 1 and 2
    a, b = round_file(tmp_path / "straight", 1), round_file(tmp_path / "resumed", 1)
    assert a[2]["sparsity"] == b[2]["sparsity"] and a[2]["test_accuracy"] == b[2]["test_accuracy"]
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])
