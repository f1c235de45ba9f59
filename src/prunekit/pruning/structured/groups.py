"""Coupled channels: trace a model with Torch-Pruning's dependency graph and list the channel groups it can prune.

A channel group is a set of channels that must go together: the output channels of one or more layers (several
when a residual addition or a concatenation ties them), the matching entries of per-channel layers (BatchNorm),
and the matching input channels of every layer that consumes them. Within a group, channels may also be tied
into units that go whole (attention heads, the same position in every group of a grouped convolution).
Torch-Pruning traces the coupling and does most of the surgery; this module turns its groups into plain named
records, adds the attention heads of nn.MultiheadAttention, and sets aside the groups that must stay whole, each
with the reason (`Traced.whole`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from prunekit.common.batches import call_model
from prunekit.common.errors import UserError
from prunekit.common.safety import one_line
from prunekit.pruning.outputs import output_layers
from prunekit.pruning.structured import attention, conv1d, coupling, limits, search
from prunekit.pruning.structured.channel_group import ChannelGroup, Member
from prunekit.pruning.structured.inputs import (
    AFTER,
    example_inputs,
    graph_mode,
    mode,
    output_shapes,
    output_tensors,
    run_named,
)
from prunekit.pruning.structured.recording import PRODUCERS, record

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
IGNORABLE = (*LAYERS, nn.Embedding, nn.MultiheadAttention)


@dataclass
class Traced:
    """A traced model: its prunable groups, the groups kept whole (name -> reason), the dependency graph that prunes
    them, the example inputs, the output shapes to preserve and the output layers."""

    model: nn.Module
    graph: tp.DependencyGraph
    groups: list[ChannelGroup]
    whole: dict[str, str]
    example_input: Any
    output_shapes: list[tuple[int, ...]]
    outputs: tuple[str, ...] = ()
    names: dict[Any, str] = field(default_factory=dict, repr=False)
    splits: list = field(default_factory=list, repr=False)  # recording.Split: counts to update after a cut

    def remove(self, group: ChannelGroup, channels: list[int]) -> None:
        """Physically delete `channels` of `group` from every coupled module."""
        if not channels:
            return
        if group.cut is not None:
            group.cut(channels)
            return
        fn = self.graph.get_pruner_of_module(group.root).prune_out_channels
        search.pruning_group(self.graph, group.root, fn, channels, self.names).prune()

    def check(self) -> None:
        """Run the pruned model once; a failure or a changed output shape names the module at fault."""
        with torch.no_grad(), mode(self.model, train=False):
            out = run_named(self.model, self.example_input, AFTER)
        shapes = output_shapes(out)
        if shapes != self.output_shapes:
            raise UserError(
                f"channel pruning changed the output of {type(self.model).__name__} from "
                f"{_shapes(self.output_shapes)} to {_shapes(shapes)}; add its last layers to ignore"
            )


def resolve_ignore(model: nn.Module, ignore: Iterable[str]) -> list[str]:
    """Names of the layers whose output channels (or heads) are kept, from `ignore`: module names, parameter names
    (`fc3.weight`), glob patterns or a parent module (`layer1`). An entry that matches no layer is an error, so a
    typo never prunes a layer the user meant to keep."""
    layers = [name for name, m in model.named_modules() if isinstance(m, IGNORABLE)]
    keep: set[str] = set()
    for pattern in (p.removesuffix(".weight") for p in ignore):
        hits = {n for n in layers if fnmatch.fnmatchcase(n, pattern) or n.startswith(pattern + ".")}
        if not hits:
            raise UserError(
                f"ignore entry {pattern!r} matches no Conv/Linear layer (nor Embedding or MultiheadAttention); "
                f"layers: {layers}"
            )
        keep |= hits
    return [n for n in layers if n in keep]


def trace(model: nn.Module, ignore: Iterable[str] = (), example_input: Any = None) -> Traced:
    """Trace `model` on `example_input` (a tensor, tuple or dict; default zeros of the zoo input shape) and list its
    channel groups in module order: the prunable ones, and the ones that stay whole with the reason."""
    inputs = example_inputs(model, example_input)
    names = {m: n for n, m in model.named_modules()}
    with graph_mode(model):
        rec = record(model, inputs)
    outs = output_tensors(rec.output)
    _check_outputs(model, outs)
    outputs = output_layers(model, inputs).modules
    protected = {n: "an output layer" for n in outputs}
    protected |= {n: "in ignore" for n in resolve_ignore(model, ignore) if n not in protected}
    graph = _graph(model, inputs)
    _refuse_cut(model, graph, rec.ran)
    facts = limits.Facts.of(model, protected, rec.direct)
    order = {n: i for i, n in enumerate(names.values())}
    groups, whole = [], {}
    for _, items in search.all_groups(graph, (*PRODUCERS, *conv1d.types(model)), names, search.Budget()):
        if isinstance(items, search.Unsettled):
            whole[items.layer] = f"the channel coupling of {items.layer!r} does not settle: {items.why}"
            continue
        group = _group(graph, items, names, order)
        reason = limits.reason(group, facts) or coupling.assign_units(group, rec.splits)
        if reason:
            whole[group.name] = reason
        else:
            groups.append(group)
    heads, kept = attention.head_groups(model, facts, rec.ran)
    groups += heads
    whole |= kept
    groups.sort(key=lambda g: order[g.name])
    return Traced(model, graph, groups, whole, inputs, [tuple(t.shape) for t in outs], outputs, names, rec.splits)


def _check_outputs(model: nn.Module, outs: list) -> None:
    if not outs:
        raise UserError(f"cannot trace {type(model).__name__} for channel pruning: its forward returns no tensor")
    if all(t.grad_fn is None for t in outs):
        raise UserError(
            f"cannot trace {type(model).__name__} for channel pruning: its outputs have no autograd "
            "history (torch.no_grad or .detach() in forward?)"
        )


def _graph(model: nn.Module, inputs: Any) -> tp.DependencyGraph:
    with graph_mode(model):
        try:
            return tp.DependencyGraph().build_dependency(
                model,
                example_inputs=inputs,
                forward_fn=call_model,
                customized_pruners=conv1d.pruners(model),
                output_transform=lambda out: [t for t in output_tensors(out) if t.grad_fn is not None],
                verbose=False,
            )
        except Exception as exc:  # Torch-Pruning raises many kinds; the user needs one line
            raise UserError(f"Torch-Pruning cannot trace {type(model).__name__}: {one_line(exc)}") from exc


def _refuse_cut(model: nn.Module, graph: tp.DependencyGraph, ran: set[str]) -> None:
    for name, module in model.named_modules():
        layer = isinstance(module, LAYERS) or conv1d.is_conv1d(module)
        if name in ran and layer and module not in graph.module2node:
            raise UserError(
                f"cannot trace {type(model).__name__} for channel pruning: module {name!r} is cut from "
                "the autograd graph (.detach() or torch.no_grad in forward, or an output used only in training?)"
            )


def _group(graph: tp.DependencyGraph, items: list, names: dict[Any, str], order: dict[str, int]) -> ChannelGroup:
    members = []
    for item in items:
        module = item.dep.target.module
        if isinstance(module, nn.Parameter):
            members.append(Member(limits.parameter_name(graph, module), module, "other", [], []))
            continue
        if module not in names:  # Torch-Pruning's placeholders for ReLU, add, flatten, ...
            continue
        out = graph.is_out_channel_pruning_fn(item.dep.handler)
        role = _role(module, out)
        transposed = getattr(module, "transposed", False) or conv1d.is_conv1d(module)  # weight [in, out]
        view = _Filters(module) if role == "out" and transposed else None
        member = Member(names[module], view or module, role, list(item.idxs), list(item.root_idxs))
        member.layer = module if view is not None else None
        members.append(member)
    root = items[0].dep.target.module
    producers = [m.name for m in members if m.role == "out"]
    name = min(producers, key=order.__getitem__)
    return ChannelGroup(name, graph.get_out_channels(root), members, root)


def _role(module: nn.Module, out: bool) -> str:
    if (isinstance(module, PRODUCERS) or conv1d.is_conv1d(module)) and out:
        return "out"
    if (isinstance(module, LAYERS) or conv1d.is_conv1d(module)) and not out:
        return "in"
    if isinstance(module, nn.MultiheadAttention | nn.RNNBase):
        return "other"
    return "norm"


class _Filters:
    """A ConvTranspose layer's weights seen as output filters, [out, in, *kernel], for filter criteria."""

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer

    @property
    def weight(self) -> torch.Tensor:
        w = self.layer.weight
        view = w.detach().transpose(0, 1)
        if w.grad is not None:
            view.grad = w.grad.transpose(0, 1)
        return view

    @property
    def bias(self) -> torch.Tensor | None:
        return self.layer.bias


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join(str(list(s)) for s in shapes)
