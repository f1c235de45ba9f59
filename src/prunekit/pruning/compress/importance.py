"""Importance of blocks, attention heads and MLP units, from calibration activations or from weight magnitude.

Activations (Minitron, Muralidharan et al. 2024), over every token of the calibration batches in one forward pass:
an MLP unit scores the mean |activation| it feeds the down projection; a query head the mean L2 norm of its slice
of the attention output (the input of o_proj); a hidden channel (the residual stream) the mean |activation| of the
norms' outputs in that channel, summed over every norm of every block (Minitron's embedding-channel importance).
Blocks (depth): ShortGPT's block influence (Men et al. 2024),
the mean over tokens of 1 - cos(h_in, h_out), or the angular distance of Gromov et al. 2024, arccos(cos(h_l,
h_{l+n})) / pi between the input of block l and the output of block l+n-1, for every run of n consecutive blocks.
Magnitude, the data-free baseline: the L2 norm of a unit's weights (its rows of the input projections and its
column of the output one; a head's rows of q_proj and columns of o_proj; a hidden channel's weights everywhere); a
block's score stays from activations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import Batch, Objective
from prunekit.pruning.compress.families import Family, blocks
from prunekit.pruning.posttrain.driver import calibrating


@dataclass
class Scores:
    """Per original block: `mlp[b][u]`, `head[b][h]` (higher = keep), `influence[b]`; `angular[l]` for the run of
    `span` blocks starting at l (lower = remove first); `hidden[c]` per hidden channel (higher = keep; empty when
    not asked for); `norm_inputs[name][c]`: the mean square of every norm's input per channel ("b.norm" for block
    b's, "final"; with `hidden`); `tokens` seen."""

    mlp: list[list[float]]
    head: list[list[float]]
    influence: list[float]
    angular: list[float] = field(default_factory=list)
    tokens: int = 0
    hidden: list[float] = field(default_factory=list)
    norm_inputs: dict[str, list[float]] = field(default_factory=dict)


def _hidden(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _output(out: Any) -> Tensor:
    return out[0] if isinstance(out, tuple | list) else out


def _cos(a: Tensor, b: Tensor) -> Tensor:
    a, b = a.reshape(-1, a.shape[-1]).double(), b.reshape(-1, b.shape[-1]).double()
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12).clamp(-1.0, 1.0)


# The sums over one batch's tokens, shared with the streamed measurement (prunekit.streaming.importance), which
# adds them up block by block in the same order and so gets the same bits.
def unit_sums(x: Tensor) -> Tensor:
    """Per MLP unit: the sum of |activation| over the tokens of `x` (the input of the down projection)."""
    return x.detach().abs().reshape(-1, x.shape[-1]).double().sum(0)


def head_sums(x: Tensor, heads: int) -> Tensor:
    """Per query head: the sum over tokens of the L2 norm of its slice of `x` (the input of o_proj)."""
    x = x.detach()
    return x.reshape(-1, heads, x.shape[-1] // heads).double().norm(dim=-1).sum(0)


def influence_sum(h_in: Tensor, h_out: Tensor) -> float:
    """ShortGPT's block influence summed over tokens: 1 - cos(h_in, h_out)."""
    return float((1.0 - _cos(h_in.detach(), h_out.detach())).sum())


def angular_sum(first: Tensor, last: Tensor) -> float:
    """Gromov et al.'s angular distance summed over tokens: arccos(cos(h_first, h_last)) / pi."""
    return float((torch.arccos(_cos(first, last)) / math.pi).sum())


def from_sums(
    mlp: list[Tensor], head: list[Tensor | None], influence: list[float], angular: list[float], tokens: int
) -> Scores:
    """The mean scores from their sums over `tokens` tokens."""
    scale = 1.0 / max(tokens, 1)
    return Scores(
        mlp=[(s * scale).tolist() for s in mlp],
        head=[(s * scale).tolist() if s is not None else [] for s in head],
        influence=[v * scale for v in influence],
        angular=[v * scale for v in angular],
        tokens=tokens,
    )


def activations(
    model: nn.Module,
    family: Family,
    batches: list[Batch],
    objective: Objective,
    heads: int,
    span: int,
    channels: bool = False,
) -> Scores:
    """Activation scores from one forward pass per calibration batch (see the module docstring); the hidden
    channels' only when `channels`."""
    layers = blocks(model, family)
    n = len(layers)
    mlp_sum: list[Tensor | None] = [None] * n
    head_sum: list[Tensor | None] = [None] * n
    influence = [0.0] * n
    angular = [0.0] * max(0, n - span + 1)
    boundary: list[Tensor | None] = [None] * (n + 1)
    tokens = 0
    handles = []
    hidden_sum: list[Tensor] = []

    def on_norm(_: nn.Module, __: tuple[Any, ...], out: Any) -> None:
        y = _output(out).detach()
        a = y.abs().reshape(-1, y.shape[-1]).double().sum(0)
        if hidden_sum:
            hidden_sum[0] = hidden_sum[0] + a
        else:
            hidden_sum.append(a)

    energy: dict[str, Tensor] = {}

    def on_norm_input(key: str) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            e = x.double().pow(2).reshape(-1, x.shape[-1]).sum(0)
            energy[key] = energy[key] + e if key in energy else e

        return hook

    def on_mlp(b: int) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            a = unit_sums(args[0])
            mlp_sum[b] = a if mlp_sum[b] is None else mlp_sum[b] + a

        return hook

    def on_heads(b: int) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            norms = head_sums(args[0], heads)
            head_sum[b] = norms if head_sum[b] is None else head_sum[b] + norms

        return hook

    def on_block(b: int) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            h_in, h_out = _hidden(args, kwargs).detach(), _output(out).detach()
            influence[b] += influence_sum(h_in, h_out)
            if b == 0:
                boundary[0] = h_in
            boundary[b + 1] = h_out

        return hook

    for b, block in enumerate(layers):
        handles.append(block.get_submodule(family.mlp_out).register_forward_pre_hook(on_mlp(b)))
        o = block.get_submodule(f"{family.attention}.{family.o}")
        handles.append(o.register_forward_pre_hook(on_heads(b)))
        if channels:
            for name in family.norms:
                norm = block.get_submodule(name)
                handles += [
                    norm.register_forward_hook(on_norm),
                    norm.register_forward_pre_hook(on_norm_input(f"{b}.{name}")),
                ]
        handles.append(block.register_forward_hook(on_block(b), with_kwargs=True))
    if channels:
        handles.append(model.get_submodule(family.final_norm).register_forward_pre_hook(on_norm_input("final")))
    try:
        with calibrating(model):
            for batch in batches:
                objective.forward(model, batch)
                count = boundary[0].shape[:-1].numel()
                tokens += count
                for start in range(len(angular)):
                    angular[start] += angular_sum(boundary[start], boundary[start + span])
                boundary = [None] * (n + 1)
    finally:
        for handle in handles:
            handle.remove()
    scores = from_sums(mlp_sum, head_sum, influence, angular, tokens)
    scale = 1.0 / max(tokens, 1)
    scores.hidden = (hidden_sum[0] * scale).tolist() if hidden_sum else []
    scores.norm_inputs = {key: (e * scale).tolist() for key, e in energy.items()}
    return scores


def magnitude(model: nn.Module, family: Family, heads: int) -> tuple[list[list[float]], list[list[float]]]:
    """(mlp[b][u], head[b][h]): L2 norms of each unit's and each query head's weights."""
    mlp, head = [], []
    for block in blocks(model, family):
        units, per_head = block_magnitude(block, family, heads)
        mlp.append(units)
        head.append(per_head)
    return mlp, head


@torch.no_grad()
def block_magnitude(block: nn.Module, family: Family, heads: int) -> tuple[list[float], list[float]]:
    """One block's (mlp[u], head[h]) weight norms."""
    sq = sum(_rows(block.get_submodule(p).weight, family.transposed).pow(2).sum(1) for p in family.mlp_in)
    sq = sq + _rows(block.get_submodule(family.mlp_out).weight, not family.transposed).pow(2).sum(1)
    attn = block.get_submodule(family.attention)
    o = _rows(attn.get_submodule(family.o).weight, family.transposed).t()  # [heads * head_dim, hidden]
    q = _rows(attn.get_submodule(family.q).weight, family.transposed)[: o.shape[0]]  # GPT-2: c_attn's q part
    per = q.reshape(heads, -1).pow(2).sum(1) + o.reshape(heads, -1).pow(2).sum(1)
    return sq.sqrt().tolist(), per.sqrt().tolist()


def _rows(weight: Tensor, transposed: bool) -> Tensor:
    """The weight with one row per output unit ([out, in])."""
    w = weight.detach().double()
    return w.t() if transposed else w


def drop_blocks(scores: Scores, count: int, metric: str) -> list[int]:
    """The original indices of the `count` blocks to remove: the lowest block influence, or (angular) the run of
    `count` consecutive blocks whose input and output are closest."""
    n = len(scores.influence)
    if count <= 0:
        return []
    if metric == "angular":
        start = min(range(len(scores.angular)), key=lambda i: (scores.angular[i], i))
        return list(range(start, start + count))
    return sorted(sorted(range(n), key=lambda b: (scores.influence[b], b))[:count])
