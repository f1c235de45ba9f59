"""`compress`: a Hugging Face decoder made a smaller dense model in place, by width, depth or both.

Everything is checked and decided before the first weight changes (family, options, sizes, head grouping,
calibration): a refusal is one line (UserError) and leaves the model exactly as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from prunekit.common.batches import Batch, InputsFn, make_objective
from prunekit.common.errors import UserError
from prunekit.pruning.compress.budget import hidden_target, shape_of
from prunekit.pruning.compress.families import Family, attention_sizes, blocks, family_of, mlp_size
from prunekit.pruning.compress.hidden import channel_norms, rescale_norms
from prunekit.pruning.compress.importance import Scores, activations, drop_blocks, magnitude
from prunekit.pruning.compress.plan import Costs, Plan, Sizes, check_sizes, choose, target_sizes
from prunekit.pruning.compress.surgery import apply_plan, check_loadable

IMPORTANCE = ("activation", "magnitude")
BLOCK_METRICS = ("influence", "angular")
HEAD_MODES = ("groups", "within", "none")
SIZE_KEYS = {"num_hidden_layers": "layers", "intermediate_size": "mlp", "num_attention_heads": "heads"}
SIZE_KEYS.update(num_key_value_heads="kv_heads", hidden_size="hidden")


@dataclass
class CompressReport:
    """What a compression removed: sizes and parameters before and after, the blocks dropped, the plan."""

    family: str
    before: Sizes
    after: Sizes
    params_before: int
    params_after: int
    removed_blocks: list[int]
    importance: str
    block_metric: str
    heads: str
    tokens: int
    seconds: float
    plan: Plan

    @property
    def fraction(self) -> float:
        return 1.0 - self.params_after / self.params_before

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "before": self.before.as_config(),
            "after": self.after.as_config(),
            "params_before": self.params_before,
            "params_after": self.params_after,
            "fraction_removed": round(self.fraction, 6),
            "removed_blocks": self.removed_blocks,
            "importance": self.importance,
            "block_metric": self.block_metric,
            "heads": self.heads,
            "calibration_tokens": self.tokens,
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        b, a = self.before, self.after
        return (
            f"compressed {self.family}: {self.params_before:,} -> {self.params_after:,} parameters "
            f"(-{self.fraction:.1%}); blocks {b.layers} -> {a.layers} (removed {self.removed_blocks}), MLP units "
            f"{b.mlp} -> {a.mlp}, query heads {b.heads} -> {a.heads}, key/value heads {b.kv_heads} -> {a.kv_heads}, "
            f"hidden size {b.hidden} -> {a.hidden}; "
            f"importance {self.importance}, blocks by {self.block_metric}, {self.tokens:,} calibration tokens"
        )


def compress_model(
    model: nn.Module,
    fraction: float | None = None,
    *,
    batches: list[Batch] | None = None,
    width: bool = True,
    depth: bool = False,
    hidden: bool | float = False,
    heads: str = "groups",
    importance: str = "activation",
    block_metric: str = "influence",
    depth_share: float = 0.5,
    round_to: int = 8,
    sizes: dict[str, int] | None = None,
    inputs_fn: InputsFn | None = None,
) -> CompressReport:
    """See `prunekit.compress`."""
    require_transformers()
    family = family_of(model)
    batches = list(batches or [])
    started = time.perf_counter()
    options = (fraction, sizes, width, depth, heads, importance, block_metric, depth_share, round_to, batches)
    before, after, mode = target(model, family, *options, hidden=hidden)
    channels = after.hidden < before.hidden
    span = block_span(before, after)
    objective = make_objective(None, inputs_fn)
    measured = (
        activations(model, family, batches, objective, before.heads, span, channels=channels) if batches else None
    )
    weights = magnitude(model, family, before.heads) if importance == "magnitude" else None
    norms = channel_norms(model, family) if weights is not None and channels else None
    scores = combine(family, before, after, measured, weights, norms)
    dropped, plan = decide(before, after, scores, block_metric)
    params_before = count_params(model)
    apply_plan(model, family, plan)
    rescale_norms(model, family, plan, scores.norm_inputs)  # hidden channels went: norms keep their output scale
    return CompressReport(
        family.name,
        before,
        after,
        params_before,
        count_params(model),
        dropped,
        importance,
        block_metric,
        mode,
        measured.tokens if measured else 0,
        time.perf_counter() - started,
        plan,
    )


def target(
    model: nn.Module,
    family: Family,
    fraction: float | None,
    sizes: dict[str, int] | None,
    width: bool,
    depth: bool,
    heads: str,
    importance: str,
    block_metric: str,
    depth_share: float,
    round_to: int,
    batches: list[Batch],
    hidden: bool | float = False,
) -> tuple[Sizes, Sizes, str]:
    """The options checked, and the sizes before and after (from `fraction` or `sizes`) with the head mode; reads
    only shapes and the config, so a model on the meta device will do."""
    options = (heads, importance, block_metric, depth_share, batches)
    hidden = _check_options(fraction, sizes, width, depth, hidden, *options)
    if depth and getattr(model.config, "scale_attn_by_inverse_layer_idx", False):
        raise UserError("compress: this GPT-2 scales attention by its block index, which depth removal would change")
    q, kv, head_dim = attention_sizes(model, family)
    channels = int(model.get_input_embeddings().weight.shape[1])
    before = Sizes(len(blocks(model, family)), mlp_size(model, family), q, kv, channels)
    mode = heads if family.heads else "groups" if hidden is not False else "none"
    if family.fused and hidden is not False and heads == "none":
        raise UserError("compress: GPT-2's heads go with its hidden channels: heads='none' cannot keep them")
    if sizes is not None:
        after = Sizes(**{**before.__dict__, **{SIZE_KEYS[k]: int(v) for k, v in sizes.items()}})
        if family.fused:  # GPT-2: no GQA; a head count or a hidden size states the other
            if "hidden_size" in sizes and "num_attention_heads" not in sizes and after.hidden % head_dim == 0:
                after = replace(after, heads=after.hidden // head_dim)
            after = replace(after, kv_heads=after.heads)
    elif hidden is not False:
        shape = shape_of(model, family, before, head_dim)
        after = hidden_target(
            before, shape, fraction, hidden=hidden, width=width, depth=depth, heads=mode, depth_share=depth_share,
            round_to=round_to, fused=family.fused, head_dim=head_dim, divides=family.divides,
        )  # fmt: skip
    else:
        costs = unit_costs(model, family, before)
        after = target_sizes(
            before, costs, fraction, width=width, depth=depth, heads=mode, depth_share=depth_share, round_to=round_to,
            divides=family.divides,
        )  # fmt: skip
    check_sizes(before, after, family.fused, head_dim, family.divides)
    check_loadable(model, family, after)
    return before, after, mode


def block_span(before: Sizes, after: Sizes) -> int:
    """The run length the angular distance compares (the blocks removed; at least 1)."""
    return max(1, before.layers - after.layers)


def combine(
    family: Family,
    before: Sizes,
    after: Sizes,
    measured: Scores | None,
    weights: tuple[list[list[float]], list[list[float]]] | None,
    channel_weights: list[float] | None = None,
) -> Scores:
    """The scores a decision uses: the activation scores (block influence zero without calibration), the units',
    heads' and hidden channels' replaced by weight norms for magnitude importance (`channel_weights`: the channels'
    norms where channels go), equal head scores where every head stays."""
    scores = measured or Scores(mlp=[], head=[], influence=[0.0] * before.layers)
    if weights is not None:
        scores.mlp, scores.head = weights
        scores.hidden = channel_weights or []
    if (after.heads, after.kv_heads) == (before.heads, before.kv_heads):  # the choice of heads is then all of them
        scores.head = [[1.0] * before.heads for _ in range(before.layers)]
    return scores


def decide(before: Sizes, after: Sizes, scores: Scores, block_metric: str) -> tuple[list[int], Plan]:
    """The blocks removed and the plan of what stays, from the scores (the same for the same scores)."""
    dropped = drop_blocks(scores, before.layers - after.layers, block_metric)
    kept = [b for b in range(before.layers) if b not in dropped]
    return dropped, choose(before, after, kept, scores.mlp, scores.head, scores.hidden)


def require_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise UserError("compress needs the transformers package: pip install 'prunekit[llm]'") from None


def _check_options(
    fraction: float | None,
    sizes: dict[str, int] | None,
    width: bool,
    depth: bool,
    hidden: bool | float,
    heads: str,
    importance: str,
    block_metric: str,
    depth_share: float,
    batches: list[Batch],
) -> bool | float:
    """Refuse bad options in one line; returns `hidden` as False, True or a fraction in (0, 1)."""
    for value, known, what in ((heads, HEAD_MODES, "heads"), (importance, IMPORTANCE, "importance")):
        if value not in known:
            raise UserError(f"compress: {what} {value!r} is not one of {', '.join(known)}")
    if block_metric not in BLOCK_METRICS:
        raise UserError(f"compress: block_metric {block_metric!r} is not one of {', '.join(BLOCK_METRICS)}")
    if sizes is not None:
        unknown = sorted(set(sizes) - set(SIZE_KEYS))
        if unknown:
            raise UserError(f"compress: sizes has unknown keys {unknown}; known: {', '.join(SIZE_KEYS)}")
    elif fraction is None or not 0.0 < float(fraction) < 1.0:
        raise UserError(f"compress: the fraction of parameters to remove must be in (0, 1), got {fraction}")
    if not isinstance(hidden, bool):
        if not isinstance(hidden, int | float) or not 0.0 <= float(hidden) < 1.0:
            raise UserError(
                f"compress: hidden must be true, false or the fraction of hidden channels to remove, in [0, 1) "
                f"(1 leaves none), got {hidden!r}"
            )
        hidden = float(hidden) if hidden else False
    if not (width or depth or hidden is not False) and sizes is None:
        raise UserError("compress: nothing to remove: set width=True, depth=True, hidden=True or some of them")
    if not 0.0 < depth_share < 1.0:
        raise UserError(f"compress: depth_share must be in (0, 1), got {depth_share}")
    if not batches and (importance == "activation" or depth):
        raise UserError("compress: activation importance and block ranking need calibration batches (batches=...)")
    return hidden


def unit_costs(model: nn.Module, family: Family, sizes: Sizes) -> Costs:
    """Parameters per block, per MLP unit, per query head and per key/value head, read from the first block."""
    block = blocks(model, family)[0]

    def numel(path: str) -> int:
        return sum(p.numel() for p in block.get_submodule(path).parameters())

    mlp = sum(numel(p) for p in family.mlp_in) + block.get_submodule(family.mlp_out).weight.numel()
    q_head = kv_head = 0
    if family.heads:
        a = family.attention
        q_head = (numel(f"{a}.{family.q}") + block.get_submodule(f"{a}.{family.o}").weight.numel()) // sizes.heads
        kv_head = (numel(f"{a}.{family.k}") + numel(f"{a}.{family.v}")) // sizes.kv_heads
    return Costs(count_params(model), count_params(block), mlp // sizes.mlp, q_head, kv_head)


def count_params(model: nn.Module) -> int:
    """Parameters of the model, a tied tensor counted once."""
    return sum(p.numel() for p in model.parameters())
