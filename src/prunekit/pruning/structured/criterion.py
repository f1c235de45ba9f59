"""What every channel criterion shares: the context it scores from, the registry, and the mapping onto groups.

Kept apart from the criteria themselves so that criteria in other modules (ThiNet, PCAS) import this module and
this module imports none of them: `prunekit.pruning.structured` imports every criterion module once, which
registers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective
from prunekit.common.registry import Registry
from prunekit.pruning.structured.groups import ChannelGroup, Member

Scores = dict[str, Tensor]


@dataclass
class ChannelContext:
    model: nn.Module
    groups: list[ChannelGroup]
    batches: list[Batch] = field(default_factory=list)
    generator: torch.Generator | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # what a criterion keeps for its reconstruct step
    objective: Objective = DEFAULT  # how a batch becomes model inputs and a loss


ChannelCriterion = Callable[[ChannelContext], Scores]
CHANNEL_CRITERIA: Registry[ChannelCriterion] = Registry("channel criterion")


def data_dependent(fn: ChannelCriterion) -> ChannelCriterion:
    fn.needs_data = True  # type: ignore[attr-defined]
    return fn


def to_root(group: ChannelGroup, member: Member, values: Tensor) -> Tensor:
    """A member's per-index values mapped onto the group's channels (averaged where several indices share one)."""
    root = torch.tensor(member.root_idxs, dtype=torch.long)
    picked = values.detach().float().cpu()[torch.tensor(member.idxs, dtype=torch.long)]
    total = torch.zeros(group.size).index_add_(0, root, picked)
    count = torch.zeros(group.size).index_add_(0, root, torch.ones_like(picked))
    return total / count.clamp(min=1)
