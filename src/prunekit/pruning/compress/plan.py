"""How many blocks, attention heads and MLP units a compression keeps (`Sizes`), and which ones (`Plan`).

Pure arithmetic over sizes, parameter costs and importance scores; nothing here touches a model. The sizes are
uniform across the blocks that stay (a Hugging Face config has one intermediate_size and one head count for every
block); which units stay may differ from block to block.

Heads go GQA-aware in one of two ways: `groups` removes whole key/value heads, each with every query head that
shares it (the group size stays); `within` keeps every key/value head and removes the same number of query heads
from every group. Either way `num_attention_heads` stays a multiple of `num_key_value_heads`, and query head i
still reads key/value head i // group, as the models' `repeat_kv` assumes. The hidden size (the residual stream's
width) is one set of channels for the whole model; GPT-2 (`fused`) keeps `n_embd = n_head x head_dim`, so there
heads and hidden channels go together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from prunekit.common.errors import UserError


@dataclass(frozen=True)
class Sizes:
    layers: int
    mlp: int  # intermediate units per block
    heads: int  # query heads per block
    kv_heads: int  # key/value heads per block
    hidden: int  # hidden size: the residual stream's channels

    def as_config(self) -> dict[str, int]:
        return {
            "num_hidden_layers": self.layers,
            "intermediate_size": self.mlp,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "hidden_size": self.hidden,
        }


@dataclass(frozen=True)
class Costs:
    """Parameters per removable unit: one block, one MLP unit (in one block), one query head with its share of
    o_proj (in one block), and one key/value head's k and v rows (in one block); `total` is the whole model's."""

    total: int
    block: int
    mlp_unit: int
    q_head: int
    kv_head: int


@dataclass(frozen=True)
class Plan:
    """Which original blocks stay, and in each of them (in order) which MLP units, key/value and query heads;
    which hidden channels stay (None: all)."""

    layers: list[int]
    mlp: list[list[int]]
    kv: list[list[int]]
    q: list[list[int]]
    hidden: list[int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Plan:
        lists = [[list(map(int, units)) for units in data[k]] for k in ("mlp", "kv", "q")]
        hidden = data.get("hidden")  # absent in records written before hidden-size removal
        return Plan([int(b) for b in data["layers"]], *lists, None if hidden is None else [int(c) for c in hidden])


def removed_params(before: Sizes, after: Sizes, costs: Costs) -> int:
    """Parameters a compression from `before` to `after` removes (exact for the families of families.py)."""
    per_block = costs.block - (before.mlp - after.mlp) * costs.mlp_unit
    per_block -= (before.heads - after.heads) * costs.q_head + (before.kv_heads - after.kv_heads) * costs.kv_head
    return costs.block * before.layers - per_block * after.layers


def target_sizes(
    before: Sizes,
    costs: Costs,
    fraction: float,
    *,
    width: bool,
    depth: bool,
    heads: str,
    depth_share: float,
    round_to: int,
    divides: bool = False,
) -> Sizes:
    """The sizes that remove about `fraction` of the parameters: depth takes `depth_share` of the budget when both
    width and depth are on (whole blocks, at least one), width the rest, shared by heads and MLP units in the
    proportion of their parameters within a block (heads rounded to whole units, MLP units taking the remainder).
    `divides`: the config requires hidden_size to be a multiple of the query heads (Llama): the nearest head count
    that is."""
    budget = fraction * costs.total
    layers = before.layers
    if depth:
        share = budget * (depth_share if width else 1.0)
        layers = min(before.layers - 1, max(1, round(share / costs.block)))
        layers = before.layers - layers
    if not width:
        return replace(before, layers=layers)
    left = max(0.0, budget - (before.layers - layers) * costs.block) / layers  # per remaining block
    ratio = min(left / costs.block, 0.95)
    q, kv = before.heads, before.kv_heads
    group = q // kv
    if heads == "groups" and kv > 1:
        kv = nearest(max(1, kv - round(ratio * kv)), kv, lambda n: before.hidden % (n * group) == 0 or not divides)
        q = kv * group
    elif heads == "within" and group > 1:
        g = nearest(max(1, group - round(ratio * group)), group, lambda n: before.hidden % (kv * n) == 0 or not divides)
        q = kv * g
    left -= (before.heads - q) * costs.q_head + (before.kv_heads - kv) * costs.kv_head
    units = before.mlp - max(0, round(left / costs.mlp_unit))
    if round_to > 1 and before.mlp >= 2 * round_to:
        units = max(round_to, round(units / round_to) * round_to)
    return replace(before, layers=layers, mlp=max(1, min(before.mlp, units)), heads=q, kv_heads=kv)


def nearest(wanted: int, most: int, ok: Callable[[int], bool]) -> int:
    """The count in 1..most closest to `wanted` (ties: the smaller) for which `ok` holds; `most` if none does."""
    return min((n for n in range(1, most + 1) if ok(n)), key=lambda n: (abs(n - wanted), n), default=most)


def check_sizes(before: Sizes, after: Sizes, fused: bool, head_dim: int, divides: bool = False) -> None:
    """Refuse, in one line, sizes a plain checkpoint of this model cannot state (`fused`: GPT-2, whose config makes
    a head hidden_size / heads wide; `divides`: Llama, whose config requires hidden_size % heads == 0)."""
    for key, new in asdict(after).items():
        old = getattr(before, key)
        if not 1 <= new <= old:
            raise UserError(f"compress: {key} {new} is not between 1 and the model's {old}")
    if fused and (after.kv_heads != after.heads or after.hidden != after.heads * head_dim):
        raise UserError(
            f"compress: GPT-2 makes a head n_embd / n_head wide: {after.heads} heads of {head_dim} need hidden_size "
            f"{after.heads * head_dim}, got {after.hidden} (its heads go only together with hidden channels)"
        )
    group = before.heads // before.kv_heads
    if after.heads % after.kv_heads:
        raise UserError(
            f"compress: {after.heads} query heads over {after.kv_heads} key/value heads would break head grouping "
            "(query heads must be a multiple of key/value heads)"
        )
    if after.kv_heads != before.kv_heads and after.heads // after.kv_heads != group:
        raise UserError(
            f"compress: {after.heads} query heads with {after.kv_heads} of {before.kv_heads} key/value heads would "
            f"break head grouping: remove whole groups (keep {group} query heads per key/value head) or keep every "
            "key/value head and remove query heads evenly within the groups"
        )
    if divides and after.hidden % after.heads:
        raise UserError(
            f"compress: this config requires hidden_size ({after.hidden}) to be a multiple of the query heads "
            f"({after.heads}), or its checkpoint cannot be saved"
        )


def choose(
    before: Sizes,
    after: Sizes,
    layers: list[int],
    mlp: list[list[float]],
    head: list[list[float]],
    hidden: list[float] | None = None,
) -> Plan:
    """The units that stay: the given `layers` (original indices), and in each the highest-scoring MLP units and
    heads (`mlp[b][u]`, `head[b][h]`: scores of original block b, higher = more important). Heads: whole groups
    by the sum of their query heads' scores when key/value heads go, else the best query heads of every group.
    Hidden channels: the highest of `hidden[c]` (one score per channel for the whole model)."""
    group = before.heads // before.kv_heads
    keep_group = after.heads // after.kv_heads
    plan_mlp, plan_kv, plan_q = [], [], []
    for b in layers:
        plan_mlp.append(_top(mlp[b], after.mlp))
        sums = [sum(head[b][g * group : (g + 1) * group]) for g in range(before.kv_heads)]
        kv = _top(sums, after.kv_heads)
        q = []
        for g in kv:
            members = list(range(g * group, (g + 1) * group))
            best = _top([head[b][h] for h in members], keep_group)
            q += [members[i] for i in best]
        plan_kv.append(kv)
        plan_q.append(q)
    channels = None
    if after.hidden < before.hidden:
        if hidden is None or len(hidden) != before.hidden:
            raise ValueError("choose: hidden-size removal needs one score per hidden channel")
        channels = _top(hidden, after.hidden)
    return Plan(list(layers), plan_mlp, plan_kv, plan_q, channels)


def _top(scores: list[float], k: int) -> list[int]:
    """Indices of the k highest scores, in ascending index order (ties: the lower index stays)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])
