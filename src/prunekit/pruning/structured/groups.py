"""Coupled channels: trace a model with Torch-Pruning's dependency graph and list the channel groups it can prune.

A channel group is a set of channels that must go together: the output channels of one or more Conv/Linear layers
(several when a residual addition ties them), the matching entries of per-channel layers (BatchNorm), and the
matching input channels of every layer that consumes them. Torch-Pruning traces the coupling and does the surgery;
this module turns its groups into plain named records, and turns tracing failures into a UserError naming the
module at fault.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import Tensor, nn

from prunekit.errors import UserError
from prunekit.export.safety import one_line

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class Member:
    """One module touched by a group: `role` is "out" (produces the channels), "norm" (per-channel layer such as
    BatchNorm) or "in" (consumes them); `idxs[i]` is its own index of root channel `root_idxs[i]`."""

    name: str
    module: nn.Module
    role: str
    idxs: list[int]
    root_idxs: list[int]


@dataclass
class ChannelGroup:
    """Coupled channels, named after the first producing layer in module order; scores index its `size` channels."""

    name: str
    size: int
    members: list[Member]
    root: nn.Module = field(repr=False)  # the layer Torch-Pruning prunes the group through

    def role(self, role: str) -> list[Member]:
        return [m for m in self.members if m.role == role]


@dataclass
class Traced:
    """A traced model: its groups, the dependency graph that prunes them, and the output shape to preserve."""

    model: nn.Module
    graph: tp.DependencyGraph
    groups: list[ChannelGroup]
    example_input: Tensor
    output_shape: tuple[int, ...]

    def remove(self, group: ChannelGroup, channels: list[int]) -> None:
        """Physically delete `channels` of `group` from every coupled module."""
        if channels:
            fn = self.graph.get_pruner_of_module(group.root).prune_out_channels
            self.graph.get_pruning_group(group.root, fn, channels).prune()

    def check(self) -> None:
        """Run the pruned model once; a failure or a changed output shape names the module at fault."""
        with torch.no_grad(), _mode(self.model, train=False):
            out = _forward(self.model, self.example_input, "after channel pruning")
        if tuple(out.shape) != self.output_shape:
            raise UserError(
                f"channel pruning changed the output of {type(self.model).__name__} from "
                f"{list(self.output_shape)} to {list(out.shape)}; add its last layers to prune.ignore"
            )


def resolve_ignore(model: nn.Module, ignore: Iterable[str]) -> list[str]:
    """Names of the Conv/Linear layers whose output channels are kept: the model's output layer plus `ignore`.

    Entries are module names, parameter names (`fc3.weight`), glob patterns or a parent module (`layer1`); an
    entry that matches no layer is an error, so a typo never prunes a layer the user meant to keep.
    """
    layers = [name for name, m in model.named_modules() if isinstance(m, LAYERS)]
    patterns = [p.removesuffix(".weight") for p in ignore]
    output = getattr(model, "output_layer", None)
    keep = {output} if isinstance(output, str) and output in layers else set()
    for pattern in patterns:
        hits = {n for n in layers if fnmatch.fnmatchcase(n, pattern) or n.startswith(pattern + ".")}
        if not hits:
            raise UserError(f"prune.ignore entry {pattern!r} matches no Conv/Linear layer; layers: {layers}")
        keep |= hits
    return [n for n in layers if n in keep]


def trace(model: nn.Module, ignore: Iterable[str] = (), example_input: Tensor | None = None) -> Traced:
    """Trace `model` and list its prunable channel groups in module order (ignored layers' groups left out)."""
    x = _example(model, example_input)
    names = {m: n for n, m in model.named_modules()}
    _refuse_unwrapped(model, names)
    kept = [model.get_submodule(n) for n in resolve_ignore(model, ignore)]
    ran: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: ran.append(m)) for m in model.modules() if isinstance(m, LAYERS)]
    try:
        with torch.enable_grad(), _mode(model, train=False):
            out = _forward(model, x, "while tracing")
    finally:
        for h in hooks:
            h.remove()
    if not isinstance(out, Tensor):
        raise UserError(
            f"cannot trace {type(model).__name__} for channel pruning: its forward returns a "
            f"{type(out).__name__}, not one tensor"
        )
    if out.grad_fn is None:
        raise UserError(
            f"cannot trace {type(model).__name__} for channel pruning: its output has no autograd "
            "history (torch.no_grad or .detach() in forward?)"
        )
    with torch.enable_grad(), _mode(model, train=False):
        try:
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=x, verbose=False)
        except Exception as exc:  # Torch-Pruning raises many kinds; the user needs one line
            raise UserError(f"Torch-Pruning cannot trace {type(model).__name__}: {one_line(exc)}") from exc
    cut = [names[m] for m in dict.fromkeys(ran) if m not in graph.module2node]
    if cut:
        raise UserError(
            f"cannot trace {type(model).__name__} for channel pruning: module {cut[0]!r} is cut from "
            "the autograd graph (.detach() or torch.no_grad in forward?)"
        )
    order = {n: i for i, n in enumerate(names.values())}
    found = graph.get_all_groups(ignored_layers=kept, root_module_types=LAYERS)
    groups = [_group(graph, items, names, order) for items in found]
    groups.sort(key=lambda g: order[g.name])
    return Traced(model, graph, groups, x, tuple(out.shape))


def _group(graph: tp.DependencyGraph, items: list, names: dict[nn.Module, str], order: dict[str, int]) -> ChannelGroup:
    members = []
    for item in items:
        module = item.dep.target.module
        if module not in names:  # Torch-Pruning's placeholders for ReLU, add, flatten, ...
            continue
        if isinstance(module, LAYERS):
            role = "out" if graph.is_out_channel_pruning_fn(item.dep.handler) else "in"
        else:
            role = "norm"
        members.append(Member(names[module], module, role, list(item.idxs), list(item.root_idxs)))
    root = items[0].dep.target.module
    producers = [m.name for m in members if m.role == "out"]
    name = min(producers, key=order.__getitem__)
    return ChannelGroup(name, graph.get_out_channels(root), members, root)


def _refuse_unwrapped(model: nn.Module, names: dict[nn.Module, str]) -> None:
    """Parameters used outside a layer Torch-Pruning knows (e.g. F.conv2d(x, self.weight)) cannot be followed."""
    known = tp.DependencyGraph().REGISTERED_PRUNERS
    wrapped = {
        id(p)
        for m in model.modules()
        if tp.ops.module2type(m) in known and tp.ops.module2type(m) != tp.ops.OPTYPE.ELEMENTWISE
        for p in m.parameters()
    }
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) not in wrapped:
                owner = names[module] or type(model).__name__
                raise UserError(
                    f"cannot prune channels of {type(model).__name__}: module {owner!r} uses its parameter "
                    f"{pname!r} directly ({type(module).__name__} is not a layer Torch-Pruning can "
                    "resize); rewrite it with nn.Conv/nn.Linear layers"
                )


def _example(model: nn.Module, example_input: Tensor | None) -> Tensor:
    device = next(model.parameters()).device
    if example_input is not None:
        return example_input.to(device)
    if callable(getattr(model, "example_input", None)):  # token ids for a language model
        return model.example_input(1).to(device)
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict) or "input_shape" not in arch:
        raise UserError(f"{type(model).__name__} has no arch.input_shape: pass example_input to trace it")
    return torch.zeros(1, *arch["input_shape"], device=device)


def _forward(model: nn.Module, x: Tensor, when: str) -> Tensor:
    """model(x); an exception becomes a UserError naming the innermost module that was running."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []

    def enter(module: nn.Module, _: object) -> None:
        stack.append(names[module])

    def leave(module: nn.Module, _: object, __: object) -> None:
        stack.pop()

    hooks = [m.register_forward_pre_hook(enter) for m in model.modules()]
    hooks += [m.register_forward_hook(leave) for m in model.modules()]
    try:
        return model(x)
    except Exception as exc:  # any failure inside a user model; the user needs the module's name
        where = f"module {stack[-1]!r}" if stack and stack[-1] else f"{type(model).__name__}.forward"
        raise UserError(
            f"channel pruning: {type(model).__name__} fails {when} in {where}: {one_line(exc)}; "
            "add that module to prune.ignore"
        ) from exc
    finally:
        for h in hooks:
            h.remove()


@contextlib.contextmanager
def _mode(model: nn.Module, train: bool) -> Iterator[None]:
    was = model.training
    model.train(train)
    try:
        yield
    finally:
        model.train(was)
