"""The lottery-ticket controls of a pruned IMP round (Frankle & Carbin): the round's masks on a random
re-initialisation (prune.control reinit), or random masks with the round's per-layer sparsities on the weights the
round started from (random). The Run trains and records a control as it does a round."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from prunekit.config import Config
from prunekit.pruning import allocation
from prunekit.pruning.masks import Masks
from prunekit.pruning.methods import RoundPlan
from prunekit.runner.checks import seed_for
from prunekit.store.directory import Store


def wants_control(cfg: Config, store: Store, plan: RoundPlan) -> bool:
    """Whether `plan`'s round still needs its control: controls are on, the round prunes, none is stored yet."""
    return (
        cfg.prune.control != "none" and plan.sparsity is not None and not store.exists(store.control_path(plan.index))
    )


def control_start(
    cfg: Config,
    plan: RoundPlan,
    masks: Masks,
    start_state: Callable[[], dict[str, torch.Tensor]],
    build_model: Callable[[], nn.Module],
) -> tuple[dict[str, torch.Tensor], Masks]:
    """The weights and masks a control trains from. reinit: the round's masks on a fresh network (seeded apart from
    the run's); random: `start_state()` (the weights the round started from) under random masks that keep as many
    weights in each layer as the round's masks do."""
    if cfg.prune.control == "reinit":
        torch.manual_seed(seed_for(cfg.seed, 7919))
        return build_model().state_dict(), masks
    state = start_state()
    gen = torch.Generator().manual_seed(seed_for(cfg.seed, plan.index, 7919))
    scores = {n: torch.rand(m.shape, generator=gen) for n, m in masks.items()}
    full = {n: torch.ones_like(m) for n, m in masks.items()}
    return state, allocation.select_per_layer(scores, full, {n: int(m.sum()) for n, m in masks.items()})
