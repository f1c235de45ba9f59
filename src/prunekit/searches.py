"""The public API's searched and learned pruning: AMC's ratio search, and AutoPrune's gates and BitPruning's
bitlengths trained in your own loop (re-exported by `prunekit`). Imports are deferred, so `import prunekit` stays
light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


def amc_search(
    model: nn.Module,
    evaluate: Any,
    *,
    budget: dict[str, float] | Any = None,
    structure: str = "channel",
    episodes: int = 300,
    warmup: int | None = None,
    reward: str = "error",
    example_input: Any = None,
    ignore: list[str] | None = None,
    criterion: str | None = None,
    batches: list[Any] | None = None,
    objective: Any = None,
    lbound: float = 0.2,
    seed: int = 0,
    agent: Any = None,
    refit: list[Any] | None = None,
    log: Any = print,
) -> Any:
    """AMC's per-layer ratios for any (trained) nn.Module, searched by a DDPG agent; the model is not changed.
    Returns a SearchResult: `.ratios` (layer -> fraction removed, for prune_channels(model, 0, ratios=...) or
    prunekit.prune), `.accuracy`, `.log`.

    evaluate: model -> accuracy in [0, 1] on a small held-out subset (called once per episode).
    budget: {"flops" | "params" | "latency": fraction kept}; required unless reward is "error_log_flops".
    structure: "channel" or "unstructured" (fine-grained). episodes: search length; warmup: its random start
    (default: a third of the episodes, at most 100).
    example_input: one input batch (default zeros of `model.arch["input_shape"]`). ignore: layers never pruned
    (default: the output layer). criterion: ranking within a layer (default l1_filter for channel, magnitude
    otherwise); batches + objective (prunekit.common.batches.Objective) for data-driven ones. lbound: the smallest
    fraction of a layer's units kept. agent: prunekit.pruning.amc.agent.AgentConfig. refit: training batches whose dense
    feature maps each candidate's pruned layers are refit to by least squares before it is evaluated (as AMC's
    reference; channel mode; None: no refit). log: where progress lines go (default
    print; None = quiet): the episodes at every tenth and at least every 30 s, with the time left.
    """
    from prunekit.common.batches import DEFAULT
    from prunekit.pruning.amc import amc_search as search

    return search(
        model,
        evaluate,
        budget=budget,
        structure=structure,
        episodes=episodes,
        warmup=warmup,
        reward=reward,
        example_input=example_input,
        ignore=ignore,
        criterion=criterion,
        batches=batches,
        objective=DEFAULT if objective is None else objective,
        lbound=lbound,
        seed=seed,
        agent=agent,
        refit=refit,
        log=log,
    )


def autoprune(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    penalty: float = 1e-4,
    init: float = 0.05,
    ignore: list[str] | None = None,
) -> Any:
    """AutoPrune's auxiliary gates on the prunable weights of `model`, trained by `optimizer` in your own loop;
    call `.finish()` after training to zero the pruned weights and get the masks."""
    from prunekit.pruning.masks import dense_masks, prunable_names
    from prunekit.pruning.methods.autoprune import AuxiliaryGates

    return AuxiliaryGates(model, dense_masks(model, prunable_names(model, ignore)), optimizer, penalty, init)


def bitprune(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    penalty: float = 0.01,
    init: int = 8,
    low: int = 2,
    weighted: bool = False,
    lr: float | None = None,
    ignore: list[str] | None = None,
) -> Any:
    """BitPruning's learned bitlengths on the prunable weights of `model`, trained by `optimizer` in your own loop
    (bitlengths at `lr`, default the optimizer's); call `.finish()` after training to quantise the weights to the
    learned bits (rounded up) and get them (see prunekit.pruning.methods.bitprune)."""
    from prunekit.pruning.masks import dense_masks, prunable_names
    from prunekit.pruning.methods.bitprune import LearnedBitlengths

    masks = dense_masks(model, prunable_names(model, ignore))
    return LearnedBitlengths(model, masks, optimizer, penalty, init, low, weighted, lr=lr)
