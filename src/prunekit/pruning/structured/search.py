"""A bounded walk of Torch-Pruning's dependency graph: the coupled channels of one layer, or why they do not settle.

Torch-Pruning's `get_pruning_group` follows dependencies from a layer, mapping channel indices through every
reshape, concatenation and slice, until each (node, indices) pair repeats. Where the index mappings of a cycle
are not inverses of each other (the key/value repeat of grouped-query attention, a cache concatenated onto the
keys, rotary embeddings' half-rotations), the indices drift by a constant each time round (32, 64, 96, ...) and
the walk never ends: tiny Hugging Face decoders hung there. This is the same walk with three bounds:
- a layer's indices must lie inside its width (an index past it can only come from a drifting cycle);
- at most `STEPS` dependencies per group;
- the whole search of a model ends at a deadline (`Budget`), shared by the retries of one `prune_channels` call.
A group that breaks a bound is not coupled correctly; the caller keeps it whole, naming the layer (`Unsettled`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import torch_pruning as tp
from torch import nn
from torch_pruning import _helpers
from torch_pruning.dependency import index_mapping
from torch_pruning.dependency.group import Group

STEPS = 20_000  # dependencies one group may collect (the largest legitimate groups of zoo models: a few hundred)
VISITS = 32  # distinct index lists one node may be reached with (a drifting cycle reaches it with new ones forever)
SECONDS = 20.0  # the whole group search of one model


class Unsettled(Exception):
    """The channel coupling from `layer` does not settle: `why` says how."""

    def __init__(self, layer: str, why: str) -> None:
        super().__init__(f"{layer}: {why}")
        self.layer, self.why = layer, why


CALL_END: ContextVar[float] = ContextVar("search_end", default=math.inf)  # set by prune_channels: all its traces


class Budget:
    """A deadline shared by every search of one model, and by every trace of one `prune_channels` call (CALL_END:
    its retries search again); `check` raises TimeoutError once it has passed."""

    def __init__(self, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self.end = min(time.monotonic() + seconds, CALL_END.get())

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeoutError(f"the channel coupling search ran past {self.seconds:.0f} s")


def all_groups(
    graph: tp.DependencyGraph, root_types: tuple[type, ...], names: dict[Any, str], budget: Budget
) -> Iterator[tuple[nn.Module, Group | Unsettled]]:
    """Like `graph.get_all_groups`: each producing layer not yet covered, with its full-width group (or Unsettled)."""
    index_mapping.update_index_mapping(graph)
    visited: set[int] = set()
    for module in list(graph.module2node):
        if not isinstance(module, root_types) or id(module) in visited:
            continue
        pruner = graph.get_pruner_of_module(module)
        if pruner is None or pruner.get_out_channels(module) is None:
            continue
        width = pruner.get_out_channels(module)
        try:
            group = pruning_group(graph, module, pruner.prune_out_channels, list(range(width)), names, budget, False)
        except Unsettled as exc:
            visited.add(id(module))
            yield module, exc
            continue
        for dep, _ in group:
            if graph.is_out_channel_pruning_fn(dep.handler):
                visited.add(id(dep.target.module))
        yield module, group


def pruning_group(
    graph: tp.DependencyGraph,
    module: nn.Module,
    fn: Callable,
    idxs: list[int],
    names: dict[Any, str],
    budget: Budget | None = None,
    update: bool = True,
) -> Group:
    """`graph.get_pruning_group(module, fn, idxs)` with bounds; Unsettled (naming the layer) when one is broken."""
    if update:
        index_mapping.update_index_mapping(graph)
    if isinstance(module, tp.ops.TORCH_CONV) and module.groups == module.out_channels and module.out_channels > 1:
        fn = tp.pruner.function.prune_depthwise_conv_out_channels
    root = graph.module2node[module]
    start = [_helpers._HybridIndex(idx=i, root_idx=i) for i in idxs]
    group = Group()
    group.add_dep(tp.dependency.Dependency(fn, fn, source=root, target=root), start)
    seen = {(root, fn, tuple(start))}
    visits: Counter[tuple[Any, Any]] = Counter()
    stack = [(group[0].dep, start)]
    name = names.get(module, type(module).__name__)
    steps = 0
    while stack:
        dep, current = stack.pop()
        steps += 1
        if budget is not None and steps % 64 == 0:
            _timed(budget, name)
        node, handler = dep.target, dep.handler
        for new in node.dependencies:
            if not new.is_triggered_by(handler):
                continue
            mapped = current
            for mapping in new.index_mapping:
                if mapping is not None:
                    mapped = mapping(mapped)
            if not mapped:
                continue
            key = (new.target, new.handler, tuple(mapped))
            if key in seen:
                continue
            _in_width(graph, new, mapped, name, names)
            visits[new.target, new.handler] += 1
            if visits[new.target, new.handler] > VISITS:
                raise Unsettled(
                    name, f"the tracer maps its channels round a cycle through {new.target.name} without settling"
                )
            seen.add(key)
            group.add_dep(new, mapped)
            stack.append((new, mapped))
            if len(group) > STEPS:
                raise Unsettled(name, f"its coupled channels did not settle within {STEPS} steps")
    return _merged(graph, group)


def _timed(budget: Budget, name: str) -> None:
    try:
        budget.check()
    except TimeoutError as exc:
        raise Unsettled(name, str(exc)) from exc


def _in_width(graph: tp.DependencyGraph, dep: Any, idxs: list, root: str, names: dict[Any, str]) -> None:
    """An index past the width of a real layer: the mapping drifts round a cycle (Unsettled)."""
    target = dep.target.module
    if target not in names or isinstance(target, nn.Parameter):
        return
    pruner = graph.get_pruner_of_module(target)
    if pruner is None:
        return
    out = graph.is_out_channel_pruning_fn(dep.handler)
    width = pruner.get_out_channels(target) if out else pruner.get_in_channels(target)
    if width is None:
        return
    if any(i.idx is None or not 0 <= i.idx < width for i in idxs):
        side = "output" if out else "input"
        raise Unsettled(
            root,
            f"the tracer maps its channels past the {width} {side} channels of {names[target]!r} (a reshape, "
            "repeat or concatenation it cannot follow: grouped-query attention, a key/value cache, rotary halves?)",
        )


def _merged(graph: tp.DependencyGraph, group: Group) -> Group:
    """Merge the items of one target (as Torch-Pruning does) and attach plain and root indices."""
    merged = Group()
    ignored = {id(p) for p in graph.ignored_params}
    for dep, idxs in group.items:
        if isinstance(dep.target.module, nn.Parameter) and id(dep.target.module) in ignored:
            continue
        merged.add_and_merge(dep, idxs)
    merged._DG = graph
    for i in range(len(merged)):
        hybrid = merged[i].idxs
        item = _helpers.GroupItem(merged[i].dep, _helpers.to_plain_idxs(hybrid))
        item.root_idxs = _helpers.to_root_idxs(hybrid)
        merged[i] = item
    return merged
