"""Aligned channel widths: every group keeps an allowed width, the lowest scores go, and the total removed meets the
budget as promised (within half an alignment step of the target), over many random groups, targets and scores."""

from __future__ import annotations

import random

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.config import from_dict
from prunekit.models import create_model
from prunekit.pruning.structured import channel_sparsity, output_widths, prune_channels
from prunekit.pruning.structured.allocation import select
from prunekit.runner import experiment
from tests.helpers import tiny


def allowed(size: int, original: int, round_to: int, min_channels: int) -> set[int]:
    """Widths a group may keep, written out from the definition (not from the code under test)."""
    multiple = round_to if original >= 2 * round_to else 1
    return {size} | {k for k in range(1, size + 1) if k % multiple == 0 and k >= min_channels}


def random_case(rng: random.Random) -> dict:
    groups = rng.randint(1, 6)
    widths = [[rng.randint(1, 20), rng.randint(16, 90), 8 * rng.randint(2, 12)] for _ in range(groups)]
    original = {f"g{i}": rng.choice(options) for i, options in enumerate(widths)}
    round_to = rng.choice([1, 2, 4, 8, 16])
    min_channels = rng.choice([1, 1, 2, 5, 9])
    sizes = {}
    for name, width in original.items():  # some groups already lost channels in an earlier round
        sizes[name] = width if rng.random() < 0.7 else rng.choice(sorted(allowed(width, width, round_to, 1)))
    scores = {n: torch.tensor([float(rng.randint(0, 6)) for _ in range(s)]) + 0.5 for n, s in sizes.items()}
    return {
        "scores": scores,
        "sizes": sizes,
        "original": original,
        "fraction": rng.uniform(0.0, 0.97),
        "round_to": round_to,
        "min_channels": min_channels,
    }


def check_groups(case: dict, drop: dict[str, torch.Tensor]) -> dict[str, int]:
    kept = {}
    for name, size in case["sizes"].items():
        removed = drop[name].tolist()
        assert removed == sorted(set(removed)) and all(0 <= i < size for i in removed)
        kept[name] = size - len(removed)
        grid = allowed(size, case["original"][name], case["round_to"], case["min_channels"])
        assert kept[name] in grid, (name, size, kept[name])
        survivors = torch.ones(size, dtype=torch.bool)
        survivors[drop[name]] = False
        scores = case["scores"][name]
        if removed and survivors.any():  # the lowest scores go (normalising within a group keeps the order)
            assert float(scores[drop[name]].max()) <= float(scores[survivors].min())
    return kept


def step(case: dict) -> int:
    """The largest alignment step among the groups."""
    return max(case["round_to"] if w >= 2 * case["round_to"] else 1 for w in case["original"].values())


@pytest.mark.parametrize("seed", range(4))
def test_global_meets_the_budget_within_half_a_step(seed):
    rng = random.Random(seed)
    for _ in range(150):
        case = random_case(rng)
        drop = select(**case, scope="global")
        kept = check_groups(case, drop)
        sizes, original = case["sizes"], case["original"]
        target = round(case["fraction"] * sum(original.values())) - sum(original[n] - sizes[n] for n in sizes)
        removable = sum(
            s - min(allowed(s, original[n], case["round_to"], case["min_channels"])) for n, s in sizes.items()
        )
        removed = sum(sizes[n] - kept[n] for n in sizes)
        if target <= 0:
            assert removed == 0
        elif target >= removable:
            assert removed == removable
        else:
            assert abs(removed - target) <= step(case) / 2, case


def test_global_on_a_common_grid_lands_on_the_nearest_multiple():
    rng = random.Random(7)
    for _ in range(200):
        q = rng.choice([4, 8, 16])
        original = {f"g{i}": q * rng.randint(2, 10) for i in range(rng.randint(1, 5))}
        gen = torch.Generator().manual_seed(rng.randint(0, 99))
        scores = {n: torch.rand(w, generator=gen) for n, w in original.items()}
        fraction = rng.uniform(0.0, 0.8)
        drop = select(scores, original, original, fraction, scope="global", round_to=q)
        removed = sum(len(d) for d in drop.values())
        target = round(fraction * sum(original.values()))
        capacity = sum(w - q for w in original.values())
        below = target // q * q
        nearest = below + q if target - below >= q / 2 else below  # ties remove more
        assert removed == min(nearest, capacity)


@pytest.mark.parametrize("seed", range(4))
def test_layerwise_keeps_a_grid_neighbour_of_each_share_and_meets_the_total(seed):
    rng = random.Random(100 + seed)
    for _ in range(150):
        case = random_case(rng)
        drop = select(**case, scope="layerwise")
        kept = check_groups(case, drop)
        sizes, original, f = case["sizes"], case["original"], case["fraction"]
        low, high = {}, {}
        for n, size in sizes.items():
            share = original[n] - round(f * original[n])
            grid = sorted(allowed(size, original[n], case["round_to"], case["min_channels"]))
            low[n] = max([k for k in grid if k <= share], default=grid[0])
            high[n] = min([k for k in grid if k >= share], default=grid[-1])
            assert kept[n] in (low[n], high[n])
        target = sum(round(f * original[n]) for n in sizes)
        most = sum(original[n] - low[n] for n in sizes)  # every group rounded down
        least = sum(original[n] - high[n] for n in sizes)
        removed = sum(original[n] - kept[n] for n in sizes)
        if least <= target <= most:
            assert abs(removed - target) <= step(case) / 2, case
        else:
            assert removed == (most if target > most else least)


def test_round_to_one_is_exact():
    case = random_case(random.Random(3)) | {"round_to": 1, "min_channels": 1}
    sizes = case["sizes"] = dict(case["original"])
    case["scores"] = {n: torch.rand(s) for n, s in sizes.items()}
    drop = select(**case, scope="global")
    assert sum(len(d) for d in drop.values()) == min(
        round(case["fraction"] * sum(sizes.values())), sum(s - 1 for s in sizes.values())
    )


@pytest.mark.parametrize(("name", "scope"), [("resnet18", "global"), ("resnet20", "layerwise")])
def test_half_the_channels_on_multiples_of_eight(name, scope):
    torch.manual_seed(0)
    model = create_model(name, 10, (3, 16, 16))
    prune_channels(model, 0.5, scope=scope, round_to=8)
    widths = output_widths(model)
    assert all(w % 8 == 0 for layer, w in widths.items() if layer != "fc"), widths
    assert channel_sparsity(model) == 0.5  # 2,880 and 448 channels: half of either is on the grid


def test_iterative_rounds_stay_on_the_grid():
    torch.manual_seed(0)
    model = create_model("resnet20", 10, (3, 16, 16))
    for fraction in (0.2, 0.36, 0.49, 0.59):
        prune_channels(model, fraction, scope="global", round_to=8)
        widths = [w for n, w in output_widths(model).items() if n != "fc"]
        assert all(w % 8 == 0 for w in widths), widths  # every group of resnet20 has 16, 32 or 64 channels
        assert abs(channel_sparsity(model) - fraction) <= 4.5 / 448 + 1e-9  # 448 channels in its groups


def test_small_groups_stay_exact_and_min_channels_rounds_up():
    model = create_model("lenet5")  # conv1 has 6 channels (< 16: exact), conv2 16, fc1 120, fc2 84
    prune_channels(model, 0.5, round_to=8, min_channels=9)
    widths = output_widths(model)
    assert widths["conv1"] == 6  # min_channels 9 > 6 channels: kept whole
    assert widths["conv2"] == 16  # the smallest multiple of 8 holding 9 channels
    assert widths["fc1"] % 8 == 0 and widths["fc2"] % 8 == 0


def test_bad_round_to():
    with pytest.raises(UserError, match="round_to must be at least 1"):
        prune_channels(create_model("lenet5"), 0.5, round_to=0)
    with pytest.raises(UserError, match="prune.round_to"):
        from_dict({"prune": {"round_to": 0}})


def test_the_runner_passes_round_to(tmp_path):
    base = {
        "model.name": "lenet5",
        "data.shape": [1, 16, 16],
        "prune.structure": "channel",
        "prune.method": "oneshot",
        "prune.criterion": "l1_filter",
        "prune.rewind": "lr",
        "prune.sparsity": 0.3,
        "train.epochs": 1,
    }
    summary = experiment.run(tiny(**base, **{"prune.round_to": 8}), tmp_path, log=lambda _: None)
    widths = {r["name"]: r["shape"][0] for r in summary["layers"]}
    # with round_to 1 this run keeps 11, 81 and 62: only a runner that passes round_to lands on multiples of 8
    assert all(widths[n] % 8 == 0 for n in ("conv2.weight", "fc1.weight", "fc2.weight")), widths
    assert "round_to: 8" in (tmp_path / "config.yaml").read_text()
