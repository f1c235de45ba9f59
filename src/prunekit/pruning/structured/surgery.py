"""Channel pruning that shrinks the network: score, allocate, then physically cut the coupled channels.

`prune_channels` is the one primitive the runner needs for one-shot, iterative and gradual channel pruning: it
takes the target as the fraction of the *original* prunable channels removed so far, so a later round just asks
for more. Torch-Pruning's dependency graph does the surgery, so residual additions, BatchNorm and the next layer's
inputs shrink together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from prunekit.batches import DEFAULT, Batch, Objective
from prunekit.errors import UserError
from prunekit.pruning.structured.allocation import SCOPES, select
from prunekit.pruning.structured.criteria import CHANNEL_CRITERIA, ChannelContext, ChannelCriterion
from prunekit.pruning.structured.groups import ChannelGroup, trace
from prunekit.pruning.structured.widths import original_widths, output_widths


def needs_batches(criterion: str | ChannelCriterion) -> bool:
    """Whether a channel criterion scores from data (taylor, thinet): the runner then passes `batches`."""
    fn = CHANNEL_CRITERIA.get(criterion) if isinstance(criterion, str) else criterion
    return getattr(fn, "needs_data", False)


def prune_channels(
    model: nn.Module,
    fraction: float,
    *,
    criterion: str | ChannelCriterion = "l1_filter",
    scope: str = "layerwise",
    ignore: Iterable[str] = (),
    min_channels: int = 1,
    batches: list[Batch] | None = None,
    objective: Objective = DEFAULT,
    example_input: Tensor | None = None,
    generator: torch.Generator | None = None,
    original: Mapping[str, int] | None = None,
    reconstruct: bool = True,
    follow: Iterable[nn.Module] = (),
    only: Iterable[str] | None = None,
) -> nn.Module:
    """Remove channels from `model` *in place* until `fraction` of its original prunable channels are gone; return it.

    criterion: a CHANNEL_CRITERIA name (l1_filter, l2_filter, fpgm, taylor, bn_scale, random, thinet) or function.
    scope: "layerwise" (each coupled group loses the same fraction) or "global" (one ranking of normalised scores).
    ignore: Conv/Linear layers (names, `name.weight`, globs, parents) whose output channels stay; the model's
        output layer is always kept. A coupled group containing an ignored layer is left whole.
    min_channels: no group keeps fewer channels.
    batches: batches for data-dependent criteria (taylor, thinet), on the model's device; any structure that
        `objective` understands ((x, y) pairs and cross-entropy by default).
    example_input: a batch to trace with; default zeros of shape (1, *model.arch["input_shape"]).
    generator: for the random criterion and ThiNet's sampled positions.
    original: output width of each group's first layer (by module name) before any pruning; default: rebuilt from
        `model.arch`, or the current widths when the model has none.
    reconstruct: run the criterion's weight reconstruction, if it has one (ThiNet's least-squares rescaling).
    follow: other models of the same architecture and widths (e.g. a copy holding the initial weights, for
        rewinding) that lose exactly the same channels, with their own weights.
    only: prune only these groups (named after their first producing layer); the others stay as they are
        (layer-by-layer pruning: ThiNet's rounds each prune one layer of the partly pruned network).

    Parameters are replaced by smaller ones: build the optimizer after pruning. Train/eval mode is preserved.
    A UserError raised after the surgery started (a model that breaks once thinner) leaves the model partly pruned.
    """
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"channel fraction must be in [0, 1), got {fraction}")
    if scope not in SCOPES:
        raise UserError(f"unknown channel pruning scope {scope!r}: known: {', '.join(SCOPES)}")
    if int(min_channels) < 1:
        raise UserError(f"min_channels must be at least 1, got {min_channels}")
    ignore = tuple(ignore)
    fn = CHANNEL_CRITERIA.get(criterion) if isinstance(criterion, str) else criterion
    if needs_batches(fn) and not batches:
        raise UserError(f"channel criterion {getattr(fn, '__name__', fn)!r} needs batches of training data")
    traced = trace(model, ignore, example_input)
    if not traced.groups:
        raise UserError(f"{type(model).__name__} has no prunable channel group left after ignoring {list(ignore)}")
    groups = _chosen(traced.groups, only)
    widths = dict(original) if original is not None else original_widths(model)
    sizes = {g.name: g.size for g in groups}
    origin = {n: max(int(widths.get(n, size)), size) for n, size in sizes.items()}
    ctx = ChannelContext(model, groups, list(batches or []), generator, objective=objective)
    scores = fn(ctx)
    missing = sorted(set(sizes) - set(scores))
    if missing:
        raise ValueError(f"channel criterion gave no scores for groups {missing}")
    drop = select(scores, sizes, origin, fraction, scope=scope, min_channels=int(min_channels))
    removed = {name: d.tolist() for name, d in drop.items()}
    for other in follow:  # first: a follower that does not match fails before the model itself changes
        if output_widths(other) != output_widths(model):
            raise UserError(
                f"a model to follow has other widths than {type(model).__name__}: it cannot lose the same channels"
            )
        remove_channels(other, removed, ignore=ignore, example_input=traced.example_input)
    if reconstruct and hasattr(fn, "reconstruct"):
        fn.reconstruct(ctx, {g.name: _complement(drop[g.name], g.size) for g in groups})
    for group in groups:
        traced.remove(group, removed[group.name])
    traced.check()
    return model


def _chosen(groups: list[ChannelGroup], only: Iterable[str] | None) -> list[ChannelGroup]:
    """The groups named in `only` (all of them when None); a name that is no prunable group is an error."""
    if only is None:
        return groups
    wanted = set(only)
    unknown = sorted(wanted - {g.name for g in groups})
    if unknown:
        raise UserError(f"no prunable channel groups {unknown}; groups: {[g.name for g in groups]}")
    return [g for g in groups if g.name in wanted]


def remove_channels(
    model: nn.Module,
    removed: Mapping[str, list[int]],
    *,
    ignore: Iterable[str] = (),
    example_input: Tensor | None = None,
) -> nn.Module:
    """Remove the given channels (group name -> current channel indices) from `model` in place; return it."""
    traced = trace(model, ignore, example_input)
    sizes = {g.name: g.size for g in traced.groups}
    unknown = sorted(set(removed) - set(sizes))
    if unknown:
        raise UserError(f"{type(model).__name__} has no channel groups {unknown}; its groups: {sorted(sizes)}")
    for group in traced.groups:
        channels = sorted(set(removed.get(group.name, [])))
        if channels and not (channels[0] >= 0 and channels[-1] < group.size and len(channels) < group.size):
            raise UserError(f"cannot remove channels {channels} from group {group.name!r} of {group.size} channels")
        traced.remove(group, channels)
    traced.check()
    return model


def _complement(drop: Tensor, size: int) -> Tensor:
    keep = torch.ones(size, dtype=torch.bool)
    keep[drop] = False
    return torch.nonzero(keep).flatten()
