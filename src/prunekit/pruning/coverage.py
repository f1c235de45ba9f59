"""Which tensors a prune touches, by which rule, and what it leaves out, with why: `prunekit.prunable(model)`.

A rule names the weight tensors of one kind of layer (RULES, by name; register more for layers of your own):
  conv            Conv1d/2d/3d `weight` [out, in/groups, *kernel]; a unit is an output channel (filter)
  conv_transpose  ConvTranspose1d/2d/3d `weight` [in, out/groups, *kernel]; a unit is an output channel (dim 1)
  linear          Linear `weight` [out, in]; a unit is an output feature (neuron)
  attention       MultiheadAttention `in_proj_weight` [3E, E] (or q/k/v_proj_weight) and `out_proj.weight` [E, E];
                  a unit is a query/key/value feature (a row) or an output feature
  recurrent       LSTM/GRU/RNN `weight_ih_l*`, `weight_hh_l*` (and `weight_hr_l*`, `_reverse`) [gates*H, in];
                  a unit is one gate pre-activation (a row: 4 per LSTM hidden unit, 3 per GRU, 1 per RNN)
  embedding       Embedding/EmbeddingBag `weight` [tokens, dim], only with include_embeddings; a unit is a token
  transposed_linear  Hugging Face GPT-2 `Conv1D` `weight` [in, out]; a unit is an output feature (dim 1)
A parameter shared by several modules (tied weights, a layer applied twice) is one tensor with one mask, named by
its first name in `named_parameters()` order; its other names are its aliases. It is covered when one of its uses
is and none of its uses is left out (a tied embedding/output head needs include_embeddings and include_output).
Biases, normalisation layers and parameters of other modules are never pruned. The output layer (see
prunekit.pruning.outputs) is left out unless include_output; `ignore` (names, module names or glob patterns) leaves
out more.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.common.registry import Registry


@dataclass(frozen=True)
class Slot:
    """One weight a rule names on a module: its attribute path, what a unit of it is, and its unit layout."""

    attr: str
    unit: str
    out_axis: int = 0  # the axis of output units (1 for ConvTranspose's [in, out/groups, ...])
    groups: int = 1  # for out_axis 1: groups of the transposed convolution
    produces_output: bool = True  # False for the q/k/v projections: the output layer keeps only what emits outputs


@dataclass(frozen=True)
class Rule:
    name: str
    types: tuple[type, ...]
    slots: Callable[[nn.Module], list[Slot]]
    optional: str | None = None  # the prunable() flag that enables it ("include_embeddings")
    match: Callable[[nn.Module], bool] | None = None  # instead of `types`, for layers known by name, not by class

    def applies(self, module: nn.Module) -> bool:
        return self.match(module) if self.match is not None else isinstance(module, self.types)


RULES: Registry[Rule] = Registry("coverage rule")
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


ORDER: list[str] = []  # rules are tried in this order, first match wins (a subclass before its base class)


def register(rule: Rule, first: bool = False) -> Rule:
    """Add a rule; `first` puts it before the built-in ones (for a subclass of Linear with weights of its own)."""
    RULES.register(rule.name)(rule)
    if first:
        ORDER.insert(0, rule.name)
    else:
        ORDER.append(rule.name)
    return rule


register(
    Rule(
        "attention",
        (nn.MultiheadAttention,),
        lambda m: [
            *(
                [Slot("in_proj_weight", "query/key/value feature", produces_output=False)]
                if m.in_proj_weight is not None
                else [Slot(f"{x}_proj_weight", f"{x} feature", produces_output=False) for x in "qkv"]
            ),
            Slot("out_proj.weight", "output feature"),
        ],
    )
)
register(
    Rule(
        "recurrent",
        (nn.RNNBase,),
        lambda m: [
            Slot(n, "projected output" if "_hr_" in n else "gate pre-activation")
            for n in m._flat_weights_names
            if n.startswith("weight_")
        ],
    )
)
register(
    Rule(
        "conv_transpose",
        (nn.modules.conv._ConvTransposeNd,),
        lambda m: [Slot("weight", "output channel", out_axis=1, groups=m.groups)],
    )
)
register(Rule("conv", (nn.modules.conv._ConvNd,), lambda m: [Slot("weight", "output channel (filter)")]))
register(Rule("linear", (nn.Linear,), lambda m: [Slot("weight", "output feature (neuron)")]))
register(Rule("embedding", (nn.Embedding, nn.EmbeddingBag), lambda m: [Slot("weight", "token")], "include_embeddings"))


def is_transposed_linear(module: nn.Module) -> bool:
    """The `Conv1D` of GPT-2-style Hugging Face models: a linear layer whose weight is stored [in, out].

    Recognised by its class name and shape, so prunekit never imports transformers to look for it (coverage rule
    "transposed_linear" below).
    """
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(weight, Tensor)
        and weight.dim() == 2
        and getattr(module, "nf", None) == weight.shape[1]
    )


register(  # Hugging Face GPT-2's Conv1D: a Linear whose weight is stored [in, out] (known by name, never imported)
    Rule(
        "transposed_linear",
        (),
        lambda m: [Slot("weight", "output feature (neuron)", out_axis=1)],
        match=is_transposed_linear,
    )
)


@dataclass(frozen=True)
class Use:
    """A module whose forward reads a tensor, through attribute path `attr` (e.g. "out_proj.weight")."""

    module: str
    attr: str
    rule: str
    slot: Slot


@dataclass
class Candidate:
    """A tensor some rule names, with every use of it."""

    name: str
    param: nn.Parameter
    uses: list[Use] = field(default_factory=list)
    aliases: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        return self.uses[0].rule

    @property
    def slot(self) -> Slot:
        return self.uses[0].slot


@dataclass(frozen=True)
class Covered:
    name: str
    shape: tuple[int, ...]
    rule: str
    unit: str
    modules: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    out_axis: int = 0
    groups: int = 1


@dataclass(frozen=True)
class LeftOut:
    name: str
    reason: str


def _attribute(module: nn.Module, attr_path: str) -> Any:
    target = module
    for part in attr_path.split("."):
        target = getattr(target, part, None)
    return target


def candidates(model: nn.Module) -> list[Candidate]:
    """Every tensor some rule names (embeddings included), in module order, each once with all of its uses."""
    canonical = {id(p): n for n, p in model.named_parameters()}
    aliases: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        if n != canonical[id(p)]:
            aliases.setdefault(id(p), []).append(n)
    found: dict[int, Candidate] = {}
    for mname, module in model.named_modules():
        rule = next((RULES.get(r) for r in ORDER if RULES.get(r).applies(module)), None)
        if rule is None:
            continue
        for slot in rule.slots(module):
            param = _attribute(module, slot.attr)
            if not isinstance(param, nn.Parameter) or isinstance(param, nn.parameter.UninitializedParameter):
                continue
            entry = found.setdefault(id(param), Candidate(canonical[id(param)], param))
            if any(_inside(mname, u.module) for u in entry.uses):  # MultiheadAttention's out_proj: one use
                continue
            entry.uses.append(Use(mname, slot.attr, rule.name, slot))
    for entry in found.values():
        entry.aliases = tuple(aliases.get(id(entry.param), ()))
    return list(found.values())


def _inside(module: str, ancestor: str) -> bool:
    return module.startswith(ancestor + ".") if ancestor else True


def _full(use: Use) -> str:
    return f"{use.module}.{use.attr}" if use.module else use.attr


def _matches(entry: Candidate, pattern: str) -> bool:
    names = {entry.name, *entry.aliases, *(_full(u) for u in entry.uses), *(u.module for u in entry.uses)}
    names |= {_full(u).rsplit(".", 1)[0] for u in entry.uses}  # the module that owns it (out_proj of attn)
    return any(fnmatch.fnmatchcase(n, pattern) for n in names)


def _left_out_reason(entry: Candidate, include_embeddings: bool, outputs: set[str]) -> str | None:
    embedding = [u.module for u in entry.uses if u.rule == "embedding"]
    output = [u.module for u in entry.uses if u.module in outputs and u.slot.produces_output]
    if embedding and not include_embeddings:
        also = f", also the output layer {', '.join(output)}" if output else ""
        return f"embedding ({', '.join(embedding)}{also}): include_embeddings=True prunes it"
    if output:
        return f"output layer ({', '.join(output)}): include_output=True prunes it"
    return None


def _other_reason(model: nn.Module, name: str) -> str:
    owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    if isinstance(owner, NORMS):
        return "normalisation layer: never pruned"
    if "bias" in name.rsplit(".", 1)[-1]:
        return "bias: never pruned"
    return "not a weight of a covered layer type: never pruned"


def select(
    model: nn.Module,
    *,
    ignore: Iterable[str] = (),
    include_embeddings: bool = False,
    output_modules: Iterable[str] = (),
) -> tuple[list[Candidate], list[LeftOut]]:
    """(covered candidates in module order, everything else with why). `ignore` patterns that match no candidate
    are an error: a typo must not silently prune a layer."""
    ignore, outputs = tuple(ignore), set(output_modules)
    kept, left, used, seen = [], [], set(), set()
    for entry in candidates(model):
        seen.add(entry.name)
        hits = [p for p in ignore if _matches(entry, p)]
        used |= set(hits)
        reason = _left_out_reason(entry, include_embeddings, outputs)
        if hits:
            left.append(LeftOut(entry.name, f"ignored (matches {', '.join(repr(h) for h in hits)})"))
        elif reason:
            left.append(LeftOut(entry.name, reason))
        else:
            kept.append(entry)
    unused = [p for p in ignore if p not in used]
    if unused:
        raise UserError(
            f"ignore entries match no prunable tensor: {unused}; prunable: {[c.name for c in candidates(model)]}"
        )
    left += [LeftOut(n, _other_reason(model, n)) for n, _ in model.named_parameters() if n not in seen]
    return kept, left


def covered(entry: Candidate) -> Covered:
    return Covered(
        name=entry.name,
        shape=tuple(entry.param.shape),
        rule=entry.rule,
        unit=entry.slot.unit,
        modules=tuple(dict.fromkeys(u.module for u in entry.uses)),
        aliases=entry.aliases,
        out_axis=entry.slot.out_axis,
        groups=entry.slot.groups,
    )


def layouts(model: nn.Module, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(out_axis, groups) of each named tensor whose output units are not along dim 0 (ConvTranspose)."""
    wanted = set(names)
    return {c.name: (c.slot.out_axis, c.slot.groups) for c in candidates(model) if c.name in wanted and c.slot.out_axis}


def uses_of(model: nn.Module, names: Iterable[str]) -> dict[str, list[Use]]:
    """Every module whose forward reads each named tensor (for hooks that rewrite weights on the fly, e.g. STR)."""
    wanted = set(names)
    return {c.name: c.uses for c in candidates(model) if c.name in wanted}
