"""Channel pruning that shrinks the network: score, allocate, then physically cut the coupled channels, atomically.

`prune_channels` is the one primitive the runner and `prunekit.prune_channels` need for one-shot, iterative and
gradual channel pruning: it takes the target as the fraction of the *original* prunable channels removed so far,
so a later round just asks for more. Torch-Pruning's dependency graph does the surgery (residual additions,
concatenations, BatchNorm, depthwise and grouped convolutions and the next layer's inputs shrink together);
attention heads go whole. Everything runs on a copy (see transaction.py): on any error or refusal the model is
exactly as it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective
from prunekit.common.errors import UserError
from prunekit.pruning.structured import refusal, search
from prunekit.pruning.structured.allocation import SCOPES, select
from prunekit.pruning.structured.conv1d import is_conv1d
from prunekit.pruning.structured.coupling import recount
from prunekit.pruning.structured.criteria import CHANNEL_CRITERIA, ChannelContext, ChannelCriterion
from prunekit.pruning.structured.groups import ChannelGroup, Traced, trace
from prunekit.pruning.structured.inputs import all_trainable
from prunekit.pruning.structured.recording import HEAD_ATTRS
from prunekit.pruning.structured.refusal import Blamed, after_skips, blame_glob, mark_skipped, refusing
from prunekit.pruning.structured.report import ChannelReport
from prunekit.pruning.structured.transaction import Transaction, deep_copy
from prunekit.pruning.structured.verify import cut_and_verify
from prunekit.pruning.structured.widths import original_widths, output_widths, physical_params

ROUND_TO = 8  # the default width multiple (prune.round_to): fast on CPU and GPU alike, see docs/results/speed_size.md


def needs_batches(criterion: str | ChannelCriterion) -> bool:
    """Whether a channel criterion scores from data (taylor, thinet): the runner then passes `batches`."""
    fn = CHANNEL_CRITERIA.get(criterion) if isinstance(criterion, str) else criterion
    return getattr(fn, "needs_data", False)


class _HeadCountsFailed(Exception):
    """A cut that let heads go by a count stored on a module failed: try again keeping those heads."""


MAX_SKIPS = 4  # groups (with their siblings) kept whole automatically in one call before refusing
BLAME_SECONDS = 15.0  # the search for the group at fault, all tries of one call together
_BLAME_END: ContextVar[float] = ContextVar("blame_end", default=math.inf)


@refusing
def prune_channels(model: nn.Module, fraction: float, **kwargs: Any) -> ChannelReport:
    ignore, skipped = tuple(kwargs.pop("ignore", ())), []
    token = _BLAME_END.set(time.monotonic() + BLAME_SECONDS)
    searching = search.CALL_END.set(time.monotonic() + search.SECONDS)  # retries share one search budget
    try:
        while True:
            try:
                report = _heads_or_not(model, fraction, ignore=ignore, **kwargs)
            except Blamed as exc:  # one group's channels break the model: keep it (and its siblings) whole, again
                if len(skipped) >= MAX_SKIPS or exc.advice in ignore:
                    raise UserError(after_skips(exc, skipped)) from exc
                skipped.append(exc)
                ignore += (exc.advice,)
                continue
            except UserError as exc:
                if skipped:
                    raise UserError(after_skips(exc, skipped)) from exc
                raise
            return mark_skipped(report, skipped)
    finally:
        _BLAME_END.reset(token)
        search.CALL_END.reset(searching)


def _heads_or_not(model: nn.Module, fraction: float, **kwargs: Any) -> ChannelReport:
    try:
        return _prune_channels(model, fraction, **kwargs)
    except _HeadCountsFailed:
        token = HEAD_ATTRS.set(False)
        try:
            return _prune_channels(model, fraction, **kwargs)
        finally:
            HEAD_ATTRS.reset(token)


def _prune_channels(
    model: nn.Module,
    fraction: float,
    *,
    criterion: str | ChannelCriterion = "l1_filter",
    scope: str = "layerwise",
    ignore: Iterable[str] = (),
    min_channels: int = 1,
    round_to: int = ROUND_TO,
    batches: list[Batch] | None = None,
    objective: Objective = DEFAULT,
    example_input: Any = None,
    generator: torch.Generator | None = None,
    original: Mapping[str, int] | None = None,
    reconstruct: bool = True,
    follow: Iterable[nn.Module] = (),
    verify: bool = True,
    ratios: Mapping[str, float] | None = None,
    only: Iterable[str] | None = None,
) -> ChannelReport:
    """Remove channels from `model` *in place* until `fraction` of its original prunable channels are gone.

    criterion: a CHANNEL_CRITERIA name (l1_filter, l2_filter, fpgm, taylor, bn_scale, random, thinet) or function.
    scope: "layerwise" (each coupled group loses the same fraction) or "global" (one ranking of normalised scores).
    ignore: layers (names, `name.weight`, globs, parents) whose output channels (or heads) stay; the model's output
        layers always stay. A coupled group containing a kept layer is left whole.
    min_channels: no group keeps fewer channels (attention: fewer heads than this many channels need).
    round_to: a group with at least 2 * round_to original channels keeps a multiple of round_to (or all it has),
        because kernels run fastest on aligned widths; 1 = exact counts. Groups whose units are several channels
        (attention heads, positions of grouped convolutions) are not rounded. How the budget is still met after
        rounding: prunekit.pruning.structured.allocation.
    batches: batches for data-dependent criteria (taylor, thinet), on the model's device; any structure that
        `objective` understands ((x, y) pairs and cross-entropy by default).
    example_input: model inputs to trace with (a tensor, a tuple of positional inputs or a dict of keyword
        inputs); default zeros of shape (1, *model.arch["input_shape"]).
    generator: for the random criterion and ThiNet's sampled positions.
    original: output width of each group's first layer (by module name) before any pruning; default: rebuilt from
        `model.arch`, or the current widths when the model has none.
    reconstruct: run the criterion's weight reconstruction, if it has one (ThiNet's least-squares rescaling).
    follow: other models of the same architecture and widths (e.g. a copy holding the initial weights, for
        rewinding) that lose exactly the same channels, with their own weights.
    verify: check that the thinner network computes what the original does with the removed channels zeroed.
    ratios: per-layer fractions of the original channels removed, by group name (its first producing layer) or
        the name of any layer producing the group's channels (`name.weight` works too); `fraction` applies to the
        groups not named (see `prunekit.pruning.structured.allocation.select`).
    only: prune only these groups (named after their first producing layer); the others stay as they are
        (layer-by-layer pruning: ThiNet's rounds each prune one layer of the partly pruned network).

    Returns what was removed and what stayed whole (and why). Parameters that lose channels are replaced by smaller
    ones (build the optimizer after pruning); requires_grad, dtypes, devices, buffers and train/eval modes are kept.
    """
    if not 0.0 <= fraction < 1.0:
        raise UserError(f"channel fraction must be in [0, 1), got {fraction}")
    if scope not in SCOPES:
        raise UserError(f"unknown channel pruning scope {scope!r}: known: {', '.join(SCOPES)}")
    if int(min_channels) < 1:
        raise UserError(f"min_channels must be at least 1, got {min_channels}")
    if int(round_to) < 1:
        raise UserError(f"round_to must be at least 1, got {round_to}")
    ignore = tuple(ignore)
    fn = CHANNEL_CRITERIA.get(criterion) if isinstance(criterion, str) else criterion
    if needs_batches(fn) and not batches:
        raise UserError(f"channel criterion {getattr(fn, '__name__', fn)!r} needs batches of training data")
    followers = list(follow)
    for other in followers:
        if output_widths(other) != output_widths(model):
            raise UserError(
                f"a model to follow has other widths than {type(model).__name__}: it cannot lose the same channels"
            )
    params = physical_params(model)
    widths = dict(original) if original is not None else original_widths(model)
    tx = Transaction([model, *followers])
    work = tx.copies[0]
    traced = trace(work, ignore, example_input)
    if not traced.groups:
        raise UserError(refusal.nothing_to_prune(model, traced.whole))
    groups = _chosen(traced.groups, only)
    ctx = ChannelContext(work, groups, list(batches or []), generator, objective=objective)
    with all_trainable(work):
        scores = fn(ctx)
    missing = sorted({g.name for g in groups} - set(scores))
    if missing:
        raise UserError(f"channel criterion {getattr(fn, '__name__', fn)!r} gave no scores for groups {missing}")
    named = {n: r for n, r in group_ratios(traced.groups, ratios or {}).items() if n in scores}
    drop = _choose(groups, scores, widths, fraction, scope, int(min_channels), int(round_to), named)
    removed = {name: d.tolist() for name, d in drop.items()}
    for other in tx.copies[1:]:
        _remove(other, removed, ignore, traced.example_input, verify=False)
    if reconstruct and hasattr(fn, "reconstruct"):
        fn.reconstruct(ctx, {g.name: _complement(drop[g.name], g.size) for g in groups})
    try:
        _cut(traced, removed, verify)
    except UserError as exc:
        if HEAD_ATTRS.get() and any(split.attr for split in traced.splits):
            raise _HeadCountsFailed from exc
        culprit = _blame(model, removed, ignore, traced.example_input, verify, exc)
        if culprit is None:
            raise
        raise Blamed(exc, culprit, blame_glob(culprit, [n for n, c in removed.items() if c])) from exc
    tx.commit()
    return ChannelReport(
        removed={g.name: removed.get(g.name, []) for g in traced.groups},
        widths={g.name: (g.size, g.size - len(removed.get(g.name, []))) for g in traced.groups},
        whole=dict(traced.whole),
        outputs=traced.outputs,
        params=(params, physical_params(model)),
    )


prune_channels.__doc__ = _prune_channels.__doc__
prune_channels.__wrapped__.__wrapped__ = _prune_channels  # type: ignore[attr-defined]  (help() shows the keywords)


def group_ratios(groups: list[ChannelGroup], ratios: Mapping[str, float]) -> dict[str, float]:
    """Per-layer ratios keyed by group name; any producing layer of a group (or `layer.weight`) names it."""
    owner = {m.name: g.name for g in groups for m in g.role("out")}
    out: dict[str, float] = {}
    for key, ratio in ratios.items():
        name = owner.get(key.removesuffix(".weight"))
        if name is None:
            known = [g.name for g in groups]
            raise UserError(f"per-layer ratio for {key!r} names no prunable channel group; groups: {known}")
        if name in out and out[name] != ratio:
            raise UserError(f"per-layer ratios give group {name!r} two values ({out[name]} and {ratio})")
        out[name] = float(ratio)
    return out


def _chosen(groups: list[ChannelGroup], only: Iterable[str] | None) -> list[ChannelGroup]:
    """The groups named in `only` (all of them when None); a name that is no prunable group is an error."""
    if only is None:
        return groups
    wanted = set(only)
    unknown = sorted(wanted - {g.name for g in groups})
    if unknown:
        raise UserError(f"no prunable channel groups {unknown}; groups: {[g.name for g in groups]}")
    return [g for g in groups if g.name in wanted]


@refusing
def remove_channels(
    model: nn.Module,
    removed: Mapping[str, list[int]],
    *,
    ignore: Iterable[str] = (),
    example_input: Any = None,
    verify: bool = True,
) -> nn.Module:
    """Remove the given channels (group name -> current channel indices) from `model` in place, atomically."""
    tx = Transaction([model])
    _remove(tx.copies[0], removed, tuple(ignore), example_input, verify)
    tx.commit()
    return model


def _remove(model: nn.Module, removed: Mapping[str, list[int]], ignore: tuple, example: Any, verify: bool) -> None:
    traced = trace(model, ignore, example)
    sizes = {g.name: g.size for g in traced.groups}
    unknown = sorted(set(removed) - set(sizes))
    if unknown:
        raise UserError(f"{type(model).__name__} has no channel groups {unknown}; its groups: {sorted(sizes)}")
    channels = {}
    for group in traced.groups:
        chosen = sorted(set(removed.get(group.name, [])))
        if chosen and not (chosen[0] >= 0 and chosen[-1] < group.size and len(chosen) < group.size):
            raise UserError(f"cannot remove channels {chosen} from group {group.name!r} of {group.size} channels")
        if group.units and chosen and sorted(c for u in group.units if u[0] in chosen for c in u) != chosen:
            raise UserError(f"channels {chosen} of group {group.name!r} are not whole units (heads or conv groups)")
        channels[group.name] = chosen
    _cut(traced, channels, verify)


def _blame(
    model: nn.Module, removed: Mapping[str, list[int]], ignore: tuple, example: Any, verify: bool, failure: UserError
) -> str | None:
    """After a cut failed: the first group whose channels alone make a copy of the untouched model fail the same
    checks (None when no single group does; the group itself when it is the only one that lost channels). Groups
    in the block of the module that failed (`failure.module`) are tried first; past the call's blame budget,
    `failure` is raised as it is, saying so."""
    near = getattr(failure, "module", "")
    cut = [name for name, channels in removed.items() if channels]
    if len(cut) < 2:
        return cut[0] if cut else None
    block = near.rpartition(".")[0]
    cut.sort(key=lambda name: not (near and (name.startswith(near + ".") or block and name.startswith(block + "."))))
    for name in cut:
        if time.monotonic() > _BLAME_END.get():
            raise UserError(f"{failure} (no single group found at fault within {BLAME_SECONDS:.0f} s)") from failure
        try:
            _remove(deep_copy(model), {name: removed[name]}, ignore, example, verify)
        except UserError:
            return name
    return None


def _cut(traced: Traced, removed: Mapping[str, list[int]], verify: bool) -> None:
    """Surgery on the traced (copied) model, checked; requires_grad of every parameter kept by name."""
    model = traced.model
    flags = {name: p.requires_grad for name, p in model.named_parameters(remove_duplicate=False)}
    ties = _ties(model)

    def cut() -> None:
        for group in traced.groups:
            traced.remove(group, removed.get(group.name, []))
        _sync_widths(model)
        recount(model, traced.splits)
        empty = [n for n, m in model.named_modules() if getattr(m, "weight", None) is not None and not m.weight.numel()]
        if empty:
            raise UserError(
                f"channel pruning would remove every channel of {', '.join(map(repr, empty))}; add it to ignore"
            )

    if verify:
        cut_and_verify(model, cut, traced.example_input)
    else:
        cut()
        traced.check()
    for name, p in model.named_parameters(remove_duplicate=False):
        p.requires_grad_(flags[name])
    for names in ties:
        tensors = {id(model.get_parameter(n)) for n in names}
        if len(tensors) > 1:
            raise UserError(f"channel pruning would untie {' and '.join(map(repr, names))}; add them to ignore")


def _sync_widths(model: nn.Module) -> None:
    """Width attributes read off the tensors: Torch-Pruning subtracts its index count from them, which is wrong when
    several coupled indices land on one channel (a fused q/k/v projection), while the tensors are right."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.out_features, m.in_features = m.weight.shape
        elif isinstance(m, nn.modules.conv._ConvNd):
            a, b = m.weight.shape[:2]
            m.in_channels, m.out_channels = (a, b * m.groups) if m.transposed else (b * m.groups, a)
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            source = m.weight if m.weight is not None else m.running_mean
            if source is not None:
                m.num_features = source.shape[0]
        elif isinstance(m, nn.Embedding):
            m.num_embeddings, m.embedding_dim = m.weight.shape
        elif is_conv1d(m):
            m.nf = m.weight.shape[1]
        elif isinstance(m, nn.PReLU):
            m.num_parameters = m.weight.numel()


def _ties(model: nn.Module) -> list[list[str]]:
    holders: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        holders.setdefault(id(p), []).append(name)
    return [names for names in holders.values() if len(names) > 1]


def _choose(
    groups: list[ChannelGroup],
    scores: dict[str, Tensor],
    widths: Mapping[str, int],
    fraction: float,
    scope: str,
    min_channels: int,
    round_to: int,
    ratios: Mapping[str, float] | None = None,
) -> dict[str, Tensor]:
    """Channels to remove from each group: `select` over units (a channel, a head, a position of every conv group),
    each unit scored by the mean of its channels."""
    unit_scores, sizes, origin, floor = {}, {}, {}, {}
    for g in groups:
        k = g.unit_size
        units = g.units or [[c] for c in range(g.size)]
        channel = scores[g.name]
        if channel.shape != (g.size,):
            raise UserError(f"criterion gave {list(channel.shape)} scores for group {g.name!r} of {g.size} channels")
        unit_scores[g.name] = torch.stack([channel[u].float().mean() for u in units]).cpu()
        sizes[g.name] = len(units)
        origin[g.name] = max(int(widths.get(g.name, g.size)) // k, len(units))
        floor[g.name] = max(1, math.ceil(min_channels / k))
    weights = {g.name: g.unit_size for g in groups}
    chosen = select(
        unit_scores,
        sizes,
        origin,
        fraction,
        scope=scope,
        min_channels=floor,
        round_to=round_to,
        weights=weights,
        ratios=ratios,
    )
    out = {}
    for g in groups:
        units = g.units or [[c] for c in range(g.size)]
        out[g.name] = torch.tensor(sorted(c for i in chosen[g.name].tolist() for c in units[i]), dtype=torch.long)
    return out


def _complement(drop: Tensor, size: int) -> Tensor:
    keep = torch.ones(size, dtype=torch.bool)
    keep[drop] = False
    return torch.nonzero(keep).flatten()
