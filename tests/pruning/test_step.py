"""The iterative pruning schedule (SynFlow's exponential one): the sparsity of every step, worked out by hand from
Tanaka et al. 2020's schedule, density (1 - s_k) = (1 - s0) ((1 - S) / (1 - s0))^(k/n), and checked on the masks."""

import pytest
import torch

from prunekit.models import create_model
from prunekit.pruning import step
from prunekit.pruning.criteria import ScoreContext
from prunekit.pruning.masks import dense_masks, prunable_names, sparsity


@pytest.fixture
def goals(monkeypatch):
    """The target of every pruning step, and the sparsity of the masks it returned."""
    seen = []
    original = step.prune_step

    def recording(ctx, criterion, target, **kwargs):
        masks = original(ctx, criterion, target, **kwargs)
        seen.append((target, sparsity(masks)))
        return masks

    monkeypatch.setattr(step, "prune_step", recording)
    return seen


def context(start: float = 0.0) -> ScoreContext:
    torch.manual_seed(0)
    model = create_model("lenet_300_100", 10, (1, 28, 28))
    masks = dense_masks(model, prunable_names(model))
    if start:
        masks = step.prune_step(ScoreContext(model, masks), "magnitude", start)
    return ScoreContext(model, masks)


pytestmark = pytest.mark.filterwarnings("ignore:layer collapse")  # few steps to 99% empty fc1: not the point here


@pytest.mark.parametrize(
    ("start", "target", "steps", "expected"),
    [
        (0.0, 0.99, 2, [0.9, 0.99]),  # densities 1 -> 0.1 -> 0.01
        (0.0, 0.999, 3, [0.9, 0.99, 0.999]),
        (0.5, 0.99, 2, [0.9292893218813453, 0.99]),  # density 0.5 * sqrt(0.02), then 0.01
        (0.0, 0.8, 1, [0.8]),
    ],
)
def test_exponential_schedule(goals, start, target, steps, expected):
    ctx = context(start)
    goals.clear()
    step.prune_to(ctx, "synflow", target, iterations=steps)
    assert [g for g, _ in goals] == pytest.approx(expected, abs=1e-12)
    total = sum(m.numel() for m in ctx.masks.values())
    assert [s for _, s in goals] == pytest.approx(expected, abs=1.0 / total)  # the masks reach each step's target


def test_synflow_takes_100_steps_by_default(goals):
    step.prune_to(context(), "synflow", 0.99)
    assert len(goals) == 100
    assert goals[0][0] == pytest.approx(0.045007413978564, abs=1e-12)  # 1 - 0.01^(1/100)
    assert goals[1][0] == pytest.approx(0.08798916064409024, abs=1e-12)  # 1 - 0.01^(2/100)
    assert goals[-1][0] == pytest.approx(0.99, abs=1e-12)
    goals.clear()
    step.prune_to(context(), "magnitude", 0.99)
    assert [g for g, _ in goals] == [0.99]  # every other criterion prunes in one step
