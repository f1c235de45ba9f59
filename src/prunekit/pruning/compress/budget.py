"""Parameters of a decoder at other sizes (`Shape`), and the sizes that remove a fraction of them when the hidden
size takes part (`hidden_target`).

Removing hidden channels thins every tensor of the model at once, and how much a channel weighs depends on how many
MLP units and heads stay, so the linear per-unit costs of plan.py do not describe it. Instead each tensor's shape
is written as a product of the sizes it grows with (read once from the model: block 0 stands for every block) and
the parameter count of any `Sizes` is evaluated exactly from those products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from torch import nn

from prunekit.pruning.compress.families import Family, blocks
from prunekit.pruning.compress.hidden import hidden_slots
from prunekit.pruning.compress.plan import Sizes

Factor = tuple[str | None, int]  # (a Sizes field, or None for a fixed length; multiplier)
STEPS = 1000  # the removal ratios tried: 0, 1/STEPS, ..., 0.95


@dataclass(frozen=True)
class Shape:
    """Every tensor as a product of factors: those outside the blocks, and those of one block."""

    outside: tuple[tuple[Factor, ...], ...]
    block: tuple[tuple[Factor, ...], ...]

    def params(self, s: Sizes) -> int:
        return _sum(self.outside, s) + s.layers * _sum(self.block, s)

    def block_params(self, s: Sizes) -> int:
        return _sum(self.block, s)


def _sum(terms: tuple[tuple[Factor, ...], ...], s: Sizes) -> int:
    return sum(math.prod(getattr(s, k) * m if k else m for k, m in term) for term in terms)


def shape_of(model: nn.Module, family: Family, sizes: Sizes, head_dim: int) -> Shape:
    """The model's tensors as products of sizes; each is checked against its actual shape at `sizes`."""
    labels: dict[int, dict[int, Factor]] = {}  # id(parameter) -> dim -> factor

    def label(p: nn.Parameter, dim: int, factor: Factor) -> None:
        labels.setdefault(id(p), {})[dim] = factor

    for module, name, dim in hidden_slots(model, family):
        label(getattr(module, name), dim, ("hidden", 1))
    block = blocks(model, family)[0]
    attn = block.get_submodule(family.attention)
    out = 1 if family.transposed else 0
    q_width = ("heads", 3 * head_dim) if family.fused else ("heads", head_dim)  # GPT-2: one head's q, k and v
    outputs = [(attn.get_submodule(family.q), q_width)]
    if not family.fused:
        outputs += [(attn.get_submodule(p), ("kv_heads", head_dim)) for p in (family.k, family.v)]
    outputs += [(block.get_submodule(p), ("mlp", 1)) for p in family.mlp_in]
    for layer, factor in outputs:
        label(layer.weight, out, factor)
        if getattr(layer, "bias", None) is not None:
            label(layer.bias, 0, factor)
    label(attn.get_submodule(family.o).weight, 1 - out, ("heads", head_dim))
    label(block.get_submodule(family.mlp_out).weight, 1 - out, ("mlp", 1))
    in_block = {id(p) for p in block.parameters()}
    first = f"{family.blocks}."
    outside, per_block = [], []
    for name, p in model.named_parameters():
        if name.startswith(first) and id(p) not in in_block:
            continue  # another block: block 0 stands for it
        known = labels.get(id(p), {})
        term = tuple(known.get(d, (None, n)) for d, n in enumerate(p.shape))
        if _sum((term,), sizes) != p.numel():
            raise ValueError(f"compress: the size model of {name} does not match its shape {tuple(p.shape)}")
        (per_block if id(p) in in_block else outside).append(term)
    return Shape(tuple(outside), tuple(per_block))


def shrink(n: int, ratio: float, round_to: int) -> int:
    """n less about `ratio` of it, a multiple of `round_to` where n allows, at least 1."""
    units = n - round(ratio * n)
    if round_to > 1 and n >= 2 * round_to:
        units = max(round_to, round(units / round_to) * round_to)
    return max(1, min(n, units))


def hidden_target(
    before: Sizes,
    shape: Shape,
    fraction: float,
    *,
    hidden: bool | float,
    width: bool,
    depth: bool,
    heads: str,
    depth_share: float,
    round_to: int,
    fused: bool,
    head_dim: int,
    divides: bool = False,
) -> Sizes:
    """Sizes removing about `fraction` of the parameters with the hidden size taking part: depth takes
    `depth_share` of the budget (whole blocks), then one ratio r shrinks the hidden size (`hidden` True; a float:
    exactly that fraction of the channels instead), MLP units and heads (width) alike, the r whose parameter count
    comes closest to the target. GPT-2 (`fused`): heads and hidden channels go together (hidden = heads x head_dim).
    `divides` (Llama): the hidden size stays a multiple of the query heads."""
    total = shape.params(before)
    layers = before.layers
    if depth:
        block = shape.block_params(before)
        layers -= min(before.layers - 1, max(1, round(fraction * total * depth_share / block)))
    target = total * (1.0 - fraction)

    def closest(round_to: int, divides: bool) -> tuple[float, Sizes]:
        tried = []
        for step in range(int(0.95 * STEPS) + 1):
            s = replace(
                _at(before, step / STEPS, hidden, width, heads, round_to, fused, head_dim, divides), layers=layers
            )
            tried.append((abs(shape.params(s) - target), step / STEPS, s))
        gap, r, s = min(tried, key=lambda t: (t[0], t[1]))
        return r, s

    r, _ = closest(1, False)  # the ratio at which unrounded sizes meet the target
    s = _at(before, r, hidden, width, heads, round_to, fused, head_dim, divides)  # rounded: hidden, heads (coarse)
    s = replace(s, layers=layers)
    if width:  # the MLP units take what rounding left over
        s = _mlp_remainder(s, shape, target, before.mlp, round_to)
    return s


def _mlp_remainder(s: Sizes, shape: Shape, target: float, most: int, round_to: int) -> Sizes:
    """`s` with the MLP width whose parameter count comes closest to `target` (linear in the MLP width)."""
    low, high = shape.params(replace(s, mlp=0)), shape.params(replace(s, mlp=most))
    units = round((target - low) / max(1, high - low) * most)
    if round_to > 1 and most >= 2 * round_to:
        units = round(units / round_to) * round_to
    return replace(s, mlp=max(1, min(most, units)))


def _at(
    before: Sizes,
    r: float,
    hidden: bool | float,
    width: bool,
    heads: str,
    round_to: int,
    fused: bool,
    head_dim: int,
    divides: bool,
) -> Sizes:
    h_ratio = r if hidden is True else float(hidden)
    s = before
    if width:
        q, kv = before.heads, before.kv_heads
        group = q // kv
        if heads == "groups" and kv > 1 and not fused:
            kv = max(1, kv - round(r * kv))
            q = kv * group
        elif heads == "within" and group > 1:
            q = kv * max(1, group - round(r * group))
        s = replace(s, mlp=shrink(before.mlp, r, round_to), heads=q, kv_heads=kv)
    if fused:  # GPT-2: whole heads, and the hidden size with them
        n = max(1, before.heads - round(h_ratio * before.heads))
        return replace(s, heads=n, kv_heads=n, hidden=n * head_dim)
    step = math.lcm(round_to, s.heads) if divides else round_to
    channels = shrink(before.hidden, h_ratio, step)
    if divides:  # hidden_size % heads == 0 where shrink could not round (a small model)
        channels = max(s.heads, channels - channels % s.heads)
    return replace(s, hidden=channels)
