"""AMC's environment: an episode walks the layers in order; each step turns the agent's ratio into a kept count.

State of layer t (He et al. 2018, section 3.1): its static features (index, n, c, h, w, stride, k, FLOPs), each
normalised to [0, 1] over the layers, then the FLOPs removed so far and the FLOPs of the later layers (fractions of
the dense FLOPs) and the previous action. In the resource-constrained mode every action is capped from above by
`prunekit.pruning.budget.clip_count(use_up=False)`, as the reference's action wall does: a layer keeps at most the
units that leave the budget reachable if every later layer shrinks to its minimum, so the budget always holds, and
nothing forces it to be used up (the agent learns to spend it; `use_up=True` restores the older lower clip). The
accuracy-guaranteed mode clips only to [lbound, 1]. The reward, at the end of an episode, is -error
(error = 1 - accuracy of the pruned network without fine-tuning) or -error * log(FLOPs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.pruning.amc.problems import Problem
from prunekit.pruning.budget import CostModel, clip_count, minimum_counts

REWARDS = ("error", "error_log_flops")


def normalise(features: Tensor) -> Tensor:
    """Each column scaled to [0, 1] over the layers (a constant column becomes 0)."""
    low, high = features.min(0).values, features.max(0).values
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return ((features - low) / span).float()


@dataclass
class Episode:
    kept: list[int] = field(default_factory=list)
    previous: float = 1.0


class PruningEnv:
    def __init__(
        self,
        problem: Problem,
        budget: CostModel | None,
        target: float | None,
        lbound: float,
        reward: str,
        use_up: bool = False,
    ) -> None:
        if reward not in REWARDS:
            raise UserError(f"AMC reward {reward!r} unknown: known: {', '.join(REWARDS)}")
        if budget is None and reward == "error":
            raise UserError("AMC needs a budget (e.g. flops 0.5) unless the reward is error_log_flops")
        self.problem, self.budget, self.target, self.reward_kind = problem, budget, target, reward
        self.use_up = use_up
        self.sizes = problem.sizes
        self.lo = minimum_counts(self.sizes, lbound, floor=1 if problem.structure == "channel" else 0)
        if budget is not None and budget.cost(self.lo) > target * (1 + 1e-9):
            raise UserError(
                f"budget {budget.kind} {target / budget.dense:.4g} is below what the smallest allowed layers cost "
                f"({budget.cost(self.lo) / budget.dense:.4g} of dense, at most {1 - lbound:.0%} of each layer pruned)"
            )
        self.static = normalise(problem.features)
        total = problem.flops.dense
        self.rest = [sum(problem.layer_flops[t + 1 :]) / total for t in range(len(self.sizes))]
        self.episode = Episode()

    @property
    def layers(self) -> int:
        return len(self.sizes)

    @property
    def state_size(self) -> int:
        return self.static.shape[1] + 3

    def reset(self) -> Tensor:
        self.episode = Episode()
        return self._state(0)

    def _state(self, t: int) -> Tensor:
        e, flops = self.episode, self.problem.flops
        reduced = 1.0 - flops.cost(e.kept[:t] + self.sizes[t:]) / flops.dense
        return torch.cat([self.static[t], torch.tensor([reduced, self.rest[t], e.previous])])

    def step(self, action: float) -> tuple[Tensor, float, bool, dict[str, Any]]:
        """Apply the ratio kept for the current layer; returns (next state, reward, done, info)."""
        e = self.episode
        t = len(e.kept)
        size = self.sizes[t]
        want = min(max(round(float(action) * size), self.lo[t]), size)
        if self.budget is not None:
            want = clip_count(self.budget, self.target, e.kept, want, self.lo, self.sizes, self.use_up)
        count = want
        e.kept.append(count)
        e.previous = count / size
        info: dict[str, Any] = {"action": e.previous}
        if len(e.kept) < self.layers:
            return self._state(len(e.kept)), 0.0, False, info
        accuracy = self.problem.accuracy(e.kept)
        flops = self.problem.flops.cost(e.kept)
        error = 1.0 - accuracy
        reward = -error if self.reward_kind == "error" else -error * math.log(max(flops, 1.0))
        info |= {"accuracy": accuracy, "kept": list(e.kept), "flops": flops}
        if self.budget is not None:
            info["cost"] = self.budget.cost(e.kept)
        return self._state(t), reward, True, info  # the final state: AMC repeats the last layer's
