import pytest
import torch

from prunekit.config import TrainConfig
from prunekit.models import create_model
from prunekit.pruning.allocation import prune
from prunekit.pruning.criteria import ScoreContext, magnitude
from prunekit.pruning.masks import MaskEnforcer, apply_masks, dense_masks, prunable_names
from prunekit.train.loop import evaluate, train_epoch
from prunekit.train.optim import lr_at, make_optimizer


def data(n=256):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


def masked_model(optimizer: str, weight_decay: float = 0.0):
    model = create_model("lenet_300_100", 4, (1, 8, 8))
    masks = dense_masks(model, prunable_names(model, []))
    masks = prune(magnitude(ScoreContext(model, masks)), masks, 0.8, scope="layerwise")
    apply_masks(model, masks)
    cfg = TrainConfig(optimizer=optimizer, lr=0.05, weight_decay=weight_decay, momentum=0.9, nesterov=True)
    opt = make_optimizer(model.parameters(), cfg)
    MaskEnforcer(model, masks).attach(opt)
    return model, masks, opt


@pytest.mark.parametrize("optimizer, wd", [("sgd", 0.0), ("sgd", 5e-4), ("adam", 1e-4)])
def test_pruned_weights_stay_zero_after_optimizer_steps(optimizer, wd):
    model, masks, opt = masked_model(optimizer, wd)
    x, y = data()
    train_epoch(model, opt, x, y, batch_size=32, lr_at=lambda _: 0.05, epoch=0, generator=torch.Generator())
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert torch.all(params[name][~mask] == 0)
        assert torch.any(params[name][mask] != 0)


def test_masks_cost_one_byte_per_weight():
    _, masks, _ = masked_model("sgd")
    assert all(m.dtype == torch.bool and m.element_size() == 1 for m in masks.values())


def test_training_is_deterministic_under_the_epoch_seed():
    x, y = data()
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model, _, opt = masked_model("adam")
        train_epoch(
            model, opt, x, y, batch_size=32, lr_at=lambda _: 0.01, epoch=0, generator=torch.Generator().manual_seed(5)
        )
        results.append(model.state_dict())
    for k in results[0]:
        assert torch.equal(results[0][k], results[1][k])


def test_training_learns_and_evaluate_is_a_fraction():
    x, y = data()
    x = x + 2.0 * torch.nn.functional.one_hot(y, 64).float().view(-1, 1, 8, 8)  # a learnable signal
    model = create_model("lenet_300_100", 4, (1, 8, 8))
    opt = make_optimizer(model.parameters(), TrainConfig(optimizer="adam", lr=1e-3))
    before = evaluate(model, x, y)
    for epoch in range(6):
        train_epoch(
            model,
            opt,
            x,
            y,
            batch_size=32,
            lr_at=lambda _: 3e-3,
            epoch=epoch,
            generator=torch.Generator().manual_seed(epoch),
        )
    after = evaluate(model, x, y)
    assert 0.0 <= before <= 1.0 and after > max(before, 0.9)


def test_lr_schedules():
    step = TrainConfig(epochs=160, lr=0.1, lr_schedule="step", milestones=(80, 120))
    assert [lr_at(step, e) for e in (0, 79.9, 80, 120)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    cos = TrainConfig(epochs=10, lr=0.1, lr_schedule="cosine", warmup_epochs=2)
    assert lr_at(cos, 1) == pytest.approx(0.05) and lr_at(cos, 2) == pytest.approx(0.1)
    assert lr_at(cos, 6) == pytest.approx(0.05) and lr_at(cos, 10) == pytest.approx(0.0)
