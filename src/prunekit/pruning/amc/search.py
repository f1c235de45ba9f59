"""AMC's search loop and its Python API: `amc_search(model, evaluate, budget={"flops": 0.5})` -> best ratios + log.

Episodes 0 .. warmup-1 take uniformly random actions in [lbound, 1] (filling the replay memory); later episodes
take the actor's action with truncated-normal noise of decaying sigma, and after each of them the agent learns
from one replay batch per layer. Every transition of an episode carries that episode's final reward (AMC's choice);
the replay memory holds the action the agent took (the actor's output with its noise, or the random warm-up
action), not the count the environment clipped it to, as in the reference. With `refit` batches, each candidate's
pruned layers are refit by least squares before it is evaluated (reconstruct.py), the reference's reward path.
The best policy is the episode with the highest reward. The model is left as it was (checked for fine-grained
mode, where weights are zeroed and restored).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective
from prunekit.common.errors import UserError
from prunekit.common.progress import Ticker
from prunekit.pruning.amc.agent import DDPG, AgentConfig
from prunekit.pruning.amc.env import PruningEnv
from prunekit.pruning.amc.problems import Evaluate, Problem, channel_problem, tensor_problem
from prunekit.pruning.budget import Budget, CostModel


class Environment(Protocol):
    layers: int
    state_size: int

    def reset(self) -> Tensor: ...
    def step(self, action: float) -> tuple[Tensor, float, bool, dict[str, Any]]: ...


def run_episodes(
    env: Environment,
    agent: DDPG,
    episodes: int,
    warmup: int,
    on_episode: Callable[[int, float, dict[str, Any]], None] = lambda *_: None,
) -> None:
    """The DDPG loop over `episodes` episodes of `env`, the first `warmup` with random actions."""
    for episode in range(episodes):
        state, done, steps = env.reset(), False, []
        sigma = agent.sigma(episode, warmup)
        while not done:
            action = agent.random_action() if episode < warmup else agent.act(state, sigma)
            following, reward, done, info = env.step(action)
            steps.append((state, action, following, done))
            state = following
        for s, a, s2, d in steps:
            agent.remember(s, a, reward, s2, d)
        if episode >= warmup:
            for _ in steps:
                agent.update()
        on_episode(episode, reward, info)


@dataclass
class SearchResult:
    structure: str
    ratios: dict[str, float]  # layer -> fraction removed (channels of a group, or weights of a tensor)
    accuracy: float  # of the best policy, on the evaluation, without fine-tuning
    log: dict[str, Any]  # JSON-serialisable: settings, every episode, the best policy, timings


def amc_search(
    model: nn.Module,
    evaluate: Evaluate,
    *,
    budget: dict[str, float] | Budget | None = None,
    structure: str = "channel",
    episodes: int = 300,
    warmup: int | None = None,
    reward: str = "error",
    example_input: Any = None,
    ignore: Sequence[str] | None = None,
    criterion: str | None = None,
    batches: list[Batch] | None = None,
    objective: Objective = DEFAULT,
    lbound: float = 0.2,
    seed: int = 0,
    agent: AgentConfig | None = None,
    refit: list[Batch] | None = None,
    log: Callable[[str], None] | None = None,
) -> SearchResult:
    """Search per-layer ratios for `model` (trained) with AMC's DDPG agent; the model is not changed.

    evaluate: model -> accuracy in [0, 1] (higher is better), on a held-out evaluation subset; called once per
        episode, so keep it small (AMC uses a few thousand validation images).
    budget: {"flops" | "params" | "latency": fraction kept}; required unless reward is "error_log_flops".
    structure: "channel" (ratios per channel group, applied by `prune_channels(model, 0, ratios=...)`) or
        "unstructured" (fine-grained: sparsity per weight tensor, applied with `prunekit.prune`'s fixed densities).
    example_input: one input batch for tracing and FLOPs; default zeros of `model.arch["input_shape"]`.
    ignore: layers never pruned (default: the model's output layer); criterion: how channels / weights are ranked
        within a layer (default l1_filter / magnitude); batches + objective: data for data-driven criteria.
    lbound: no layer keeps less than this fraction of its units.
    refit: training batches on which the dense network's feature maps are sampled; each candidate's pruned layers are
        refit to them by least squares before it is evaluated (channel mode; None: evaluated without a refit).
        The returned ratios are applied without the refit: `accuracy` is then the refit network's.
    warmup: episodes of random actions first (default: a third of `episodes`, at most 100).
    log: where progress lines go (the episodes at every tenth and at least every 30 s, with the time left);
        prunekit.amc_search prints them by default.
    """
    if structure not in ("channel", "unstructured"):
        raise UserError(f"AMC structure must be channel or unstructured, got {structure!r}")
    warmup = min(100, episodes // 3) if warmup is None else warmup  # AMC's 100 of 300 warm-up episodes
    if not 0 <= warmup <= episodes:
        raise UserError(f"AMC warm-up episodes must be in [0, {episodes}], got {warmup}")
    if not 0.0 < lbound <= 1.0:
        raise UserError(f"AMC lbound must be in (0, 1], got {lbound}")
    say = log or (lambda _: None)
    start = time.perf_counter()
    say(f"amc: {structure} search, {episodes} episodes ({warmup} warm-up)")
    bud = Budget.parse(budget)
    example = _example(model, example_input)
    gen = torch.Generator().manual_seed(seed)
    problem = _problem(model, evaluate, example, structure, ignore, criterion, batches, objective, gen, refit)
    try:
        cost = _cost_model(model, problem, example, bud, ignore)
        target = None if bud is None else bud.fraction * cost.dense
        env = PruningEnv(problem, None if bud is None else cost, target, lbound, reward)
        dense_accuracy = problem.accuracy(problem.sizes)
        ddpg = DDPG(env.state_size, env.layers, agent or AgentConfig(), seed, lbound)
        history: list[dict[str, Any]] = []
        setup = time.perf_counter() - start
        ticker = Ticker(episodes, say)

        def record(episode: int, value: float, info: dict[str, Any]) -> None:
            row = {
                "episode": episode,
                "reward": round(value, 6),
                "accuracy": round(info["accuracy"], 6),
                "flops_fraction": round(info["flops"] / problem.flops.dense, 6),
                "kept": info["kept"],
            }
            if "cost" in info:
                row["cost_fraction"] = round(info["cost"] / cost.dense, 6)
            history.append(row)
            best = max(history, key=lambda r: r["reward"])
            text = f"amc: episode {episode + 1}/{episodes}, best reward {best['reward']:.4f} at {best['episode']}"
            ticker.tick(episode + 1, text)

        run_episodes(env, ddpg, episodes, warmup, record)
    finally:
        problem.close()
    best = max(history, key=lambda r: r["reward"])  # the first of equals
    ratios = problem.ratios(best["kept"])
    seconds = time.perf_counter() - start
    result_log = {
        "method": "amc",
        "structure": structure,
        "budget": None if bud is None else {"kind": bud.kind, "fraction": bud.fraction, "unit": cost.unit},
        "reward": reward,
        "episodes": episodes,
        "warmup": warmup,
        "lbound": lbound,
        "seed": seed,
        "dense_accuracy": round(dense_accuracy, 6),
        "layers": [
            {"name": n, "size": s, "min": m} for n, s, m in zip(problem.names, problem.sizes, env.lo, strict=True)
        ],
        "refit": problem.refit,
        "best": {**best, "ratios": {k: round(v, 6) for k, v in ratios.items()}},
        "rewards": reward_spread(history, warmup),
        "history": history,
        "setup_seconds": round(setup, 3),
        "search_seconds": round(seconds, 3),
    }
    return SearchResult(structure, ratios, best["accuracy"], result_log)


def reward_spread(history: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """The rewards' spread over all episodes, over the warm-up and the learned phase apart, and where the best is."""
    from prunekit.common.stats import mean_std

    def part(rows: list[dict[str, Any]]) -> dict[str, Any]:
        values = [r["reward"] for r in rows]
        if not values:
            return {"episodes": 0}
        mean, std = mean_std(values)
        return {
            "episodes": len(values),
            "mean": round(mean, 6),
            "std": round(std, 6),
            "min": min(values),
            "max": max(values),
        }

    best = max(history, key=lambda r: r["reward"])
    return {
        "all": part(history),
        "warmup": part(history[:warmup]),
        "learned": part(history[warmup:]),
        "best_from": "warmup" if best["episode"] < warmup else "learned",
    }


def _example(model: nn.Module, example_input: Any) -> Any:
    from prunekit.pruning.structured.inputs import example_inputs

    return example_inputs(model, example_input)


def _problem(
    model: nn.Module,
    evaluate: Evaluate,
    example: Any,
    structure: str,
    ignore: Sequence[str] | None,
    criterion: str | None,
    batches: list[Batch] | None,
    objective: Objective,
    gen: torch.Generator,
    refit: list[Batch] | None = None,
) -> Problem:
    if structure == "channel":
        return channel_problem(
            model,
            evaluate,
            example,
            ignore=tuple(ignore or ()),
            criterion=criterion or "l1_filter",
            batches=batches,
            objective=objective,
            generator=gen,
            refit=refit,
        )
    if refit:
        raise UserError("AMC's least-squares refit is for channel pruning (structure: channel)")
    from prunekit.pruning.masks import prunable_names

    names = prunable_names(model, None if ignore is None else list(ignore))
    return tensor_problem(
        model,
        evaluate,
        example,
        names,
        criterion=criterion or "magnitude",
        batches=batches,
        objective=objective,
        generator=gen,
    )


def _cost_model(
    model: nn.Module, problem: Problem, example: Any, budget: Budget | None, ignore: Sequence[str] | None
) -> CostModel:
    """The model of the budget's resource (FLOPs when there is no budget: the accuracy-guaranteed reward)."""
    if budget is None or budget.kind == "flops":
        return problem.flops
    from prunekit.pruning.resources import cost_model

    return cost_model(model, problem.structure, budget.kind, example, ignore=tuple(ignore or ()), names=problem.names)
