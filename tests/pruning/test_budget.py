"""Budgets: the clip that meets a budget by construction, for random action sequences (a property test)."""

import random

import pytest

from prunekit.common.errors import UserError
from prunekit.pruning.budget import Budget, CostModel, clip_count, fill, linear_cost, minimum_counts, uniform_counts


def bilinear(sizes):
    """A chain of layers whose cost is like conv FLOPs: each layer costs kept_in * kept_out (inputs: previous layer)."""

    def cost(kept):
        total, previous = 0.0, 3
        for k in kept:
            total += previous * k * 9.0
            previous = k
        return total + previous * 10

    return CostModel("flops", [f"l{i}" for i in range(len(sizes))], list(sizes), cost)


MODELS = [
    bilinear([6, 16, 120, 84]),
    bilinear([32, 32, 64, 64, 128]),
    linear_cost("params", ["a", "b", "c"], [300, 5000, 20], [1.0, 2.0, 7.0], 100.0, "params"),
]


@pytest.mark.parametrize("model", MODELS, ids=["lenet-like", "vgg-like", "linear"])
def test_random_actions_meet_the_budget_exactly(model):
    rng = random.Random(0)
    lo = minimum_counts(model.sizes, 0.2)
    for _ in range(200):
        fraction = rng.uniform(0.3, 0.95)
        target = fraction * model.dense
        kept = []
        for t in range(len(model.sizes)):
            want = round(rng.random() * model.sizes[t])
            kept.append(clip_count(model, target, kept, want, lo, model.sizes))
            assert lo[t] <= kept[t] <= model.sizes[t]
        cost = model.cost(kept)
        assert cost <= target * (1 + 1e-9)
        if kept[-1] < model.sizes[-1]:  # one more unit of the last layer would break the budget
            assert model.cost([*kept[:-1], kept[-1] + 1]) > target
        else:  # the last layer is whole: the earlier clips left exactly the budget for it
            assert cost >= target * (1 - 1e-9)


def test_unreachable_budget_is_a_user_error():
    model = MODELS[0]
    lo = minimum_counts(model.sizes, 0.5)
    with pytest.raises(UserError, match="unreachable"):
        clip_count(model, 0.01 * model.dense, [], 3, lo, model.sizes)


@pytest.mark.parametrize("model", MODELS, ids=["lenet-like", "vgg-like", "linear"])
def test_uniform_counts_are_uniform_and_exact(model):
    lo = minimum_counts(model.sizes, 0.1)
    target = 0.5 * model.dense
    kept = uniform_counts(model, target, lo)
    assert model.cost(kept) <= target
    for i in range(len(kept)):  # no layer can keep one more unit
        if kept[i] < model.sizes[i]:
            assert model.cost([*kept[:i], kept[i] + 1, *kept[i + 1 :]]) > target
    fractions = [k / s for k, s in zip(kept, model.sizes, strict=True)]
    assert max(fractions) - min(fractions) < 0.35  # one ratio, up to integer rounding of small layers


def test_fill_prefers_the_priority_and_never_exceeds():
    model = linear_cost("params", ["a", "b"], [10, 10], [1.0, 1.0], 0.0, "params")
    assert fill(model, 15, [5, 5], lambda i, k: float(i)) == [5, 10]
    assert fill(model, 15, [5, 5], lambda i, k: -float(i)) == [10, 5]


def test_budget_parsing():
    assert Budget.parse({"flops": 0.5}) == Budget("flops", 0.5)
    assert Budget.parse({}) is None
    for bad in ({"flops": 0.5, "params": 0.5}, {"watts": 0.5}, {"flops": 1.5}):
        with pytest.raises(UserError):
            Budget.parse(bad)
