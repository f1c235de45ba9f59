"""AMC's environment and agent by value: the state vector, the reward formulas, the action bound (capped from above
only), what the replay memory holds, and the exploration noise's schedule. A toy problem with known costs and a
known accuracy makes every number computable by hand."""

from __future__ import annotations

import math

import pytest
import torch

from prunekit.pruning.amc.agent import DDPG, AgentConfig
from prunekit.pruning.amc.env import PruningEnv
from prunekit.pruning.amc.problems import Problem
from prunekit.pruning.amc.search import reward_spread, run_episodes
from prunekit.pruning.budget import CostModel

SIZES = [4, 10, 8]
PER_UNIT = [3.0, 2.0, 1.0]  # FLOPs per kept unit of each layer: dense 12 + 20 + 8 = 40


def flops(kept):
    return sum(k * w for k, w in zip(kept, PER_UNIT, strict=True))


def problem(accuracy: float = 0.8) -> Problem:
    features = torch.tensor(
        [[0, 3, 4, 8, 8, 1, 3, 12], [1, 4, 10, 8, 8, 1, 3, 20], [2, 10, 8, 1, 1, 0, 1, 8]], dtype=torch.float64
    )
    cost = CostModel("flops", ["a", "b", "c"], SIZES, flops)
    return Problem("channel", ["a", "b", "c"], SIZES, features, cost, lambda kept: accuracy, [12.0, 20.0, 8.0])


def test_state_vector_by_value() -> None:
    env = PruningEnv(problem(), None, None, 0.25, "error_log_flops")
    s0 = env.reset()
    # static features normalised per column over the layers: index 0/2, n (3-3)/(10-3), c 0, h 1, w 1, stride 1,
    # k 1, flops (12-8)/(20-8); then FLOPs reduced so far 0, FLOPs of the later layers (20+8)/40, previous action 1
    expected0 = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 4 / 12, 0.0, 28 / 40, 1.0]
    assert s0.tolist() == pytest.approx(expected0)
    s1, reward, done, info = env.step(0.5)  # layer a keeps round(0.5 * 4) = 2 units
    assert (reward, done, info["action"]) == (0.0, False, 0.5)
    expected1 = [0.5, 1 / 7, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 6 / 40, 8 / 40, 0.5]  # 6 of 40 FLOPs removed
    assert s1.tolist() == pytest.approx(expected1)
    s2, *_ = env.step(0.3)  # b keeps 3 of 10
    assert s2[-3:].tolist() == pytest.approx([(6 + 14) / 40, 0.0, 0.3])


@pytest.mark.parametrize("kind", ["error", "error_log_flops"])
def test_reward_formula_by_value(kind: str) -> None:
    budget = problem().flops if kind == "error" else None  # "error" needs a budget: all FLOPs, never binding
    env = PruningEnv(problem(accuracy=0.8), budget, 40.0, 0.25, kind)
    env.reset()
    for action in (0.5, 0.3, 1.0):
        _, reward, done, info = env.step(action)
    assert done and info["kept"] == [2, 3, 8] and info["flops"] == 6 + 6 + 8
    error = 1 - 0.8
    expected = -error if kind == "error" else -error * math.log(20.0)
    assert reward == pytest.approx(expected, rel=1e-12)


def test_the_action_is_capped_from_above_only() -> None:
    cost = problem().flops
    env = PruningEnv(problem(), cost, 14.0, 0.25, "error")  # a budget of 14 of the 40 dense FLOPs
    env.reset()
    _, _, _, info = env.step(1.0)
    # the most units of a that keep the budget reachable with b and c at their minima (3 and 2 units, 8 FLOPs):
    # 3 a + 8 <= 14, so a = 2 of 4
    assert info["action"] == 0.5
    env.reset()
    for action in (0.25, 0.25, 0.25):  # low actions stay low: no lower clip forces the budget to be used up
        _, _, done, info = env.step(action)
    assert done and info["kept"] == [1, 3, 2] and info["cost"] == 3 + 6 + 2
    filling = PruningEnv(problem(), cost, 14.0, 0.25, "error", use_up=True)  # the older clip, still available
    filling.reset()
    for action in (0.25, 0.25, 0.25):
        _, _, done, info = filling.step(action)
    assert 13 <= info["cost"] <= 14  # used up to within one unit of the last layer (1 FLOP)


class Clipping:
    """One layer; the environment reports a clipped action of 0.5 whatever the agent chose."""

    layers, state_size = 1, 2

    def reset(self):
        return torch.tensor([1.0, 0.0])

    def step(self, action):
        return torch.tensor([1.0, 0.0]), -abs(action - 0.7), True, {"action": 0.5}


def test_replay_memory_holds_the_agents_action_not_the_clipped_one() -> None:
    agent = DDPG(2, 1, AgentConfig(hidden=8, batch_size=4), seed=0, lbound=0.2)
    taken: list[float] = []
    act, random_action = agent.act, agent.random_action
    agent.act = lambda s, sigma: taken.append(act(s, sigma)) or taken[-1]
    agent.random_action = lambda: taken.append(random_action()) or taken[-1]
    run_episodes(Clipping(), agent, episodes=6, warmup=3)
    stored = agent.memory.a[: agent.memory.size, 0].tolist()
    assert stored == pytest.approx(taken) and all(a != 0.5 for a in stored)


def test_noise_schedule_by_value_and_noise_is_drawn() -> None:
    agent = DDPG(2, 1, AgentConfig(), seed=0, lbound=0.2)
    assert [agent.sigma(e, 100) for e in (0, 50, 100)] == [0.5, 0.5, 0.5]
    assert agent.sigma(101, 100) == pytest.approx(0.5 * 0.95) and agent.sigma(150, 100) == pytest.approx(0.5 * 0.95**50)
    state = torch.tensor([0.3, 0.6])
    mean = agent.greedy(state)
    draws = torch.tensor([agent.act(state, 0.5) for _ in range(400)])
    assert draws.min() >= 0.2 and draws.max() <= 1.0
    assert float(draws.std()) > 0.15  # a truncated N(mean, 0.5) on [0.2, 1] spreads about 0.2
    quiet = torch.tensor([agent.act(state, 0.01) for _ in range(50)])
    assert float((quiet - mean).abs().max()) < 0.05 and float(quiet.std()) > 0  # small sigma: near the actor
    assert agent.act(state, 0.0) == mean


def test_reward_spread_by_value() -> None:
    history = [{"episode": i, "reward": r} for i, r in enumerate([-0.5, -0.3, -0.4, -0.1, -0.2])]
    spread = reward_spread(history, warmup=2)
    assert spread["warmup"] == {
        "episodes": 2,
        "mean": -0.4,
        "std": pytest.approx(0.141421, abs=1e-6),
        "min": -0.5,
        "max": -0.3,
    }
    assert spread["learned"]["mean"] == pytest.approx(-0.233333, abs=1e-6)
    assert spread["learned"]["std"] == pytest.approx(0.152753, abs=1e-6)  # sample std of -0.4, -0.1, -0.2
    assert spread["best_from"] == "learned"
    assert reward_spread(history[:2], warmup=2)["best_from"] == "warmup"
