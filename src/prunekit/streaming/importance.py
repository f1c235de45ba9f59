"""The activation importance scores of structured compression, measured streamed from a checkpoint directory.

One pass of the dense model block by block, one block in memory at a time (as the pruning pass): for every block,
the mean |activation| each MLP unit feeds the down projection, the mean L2 norm of each query head's slice of the
attention output (the input of o_proj), and ShortGPT's block influence, the mean over tokens of 1 - cos(h_in,
h_out); with `span`, also Gromov et al.'s angular distance arccos(cos(h_l, h_{l+span})) / pi for every run of `span`
blocks (the block inputs of the last `span` boundaries are kept for it). These are the gradient-free scores of
`prunekit.pruning.compress.importance.activations` (Minitron, ShortGPT, Gromov), accumulated batch by batch in the
same order, for models too large to hold. Returns a plain dict (mlp, head, influence, angular, tokens).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import Batch, InputsFn, make_objective
from prunekit.common.errors import UserError
from prunekit.pruning.posttrain.blocks import Call, find_blocks, next_call
from prunekit.pruning.posttrain.driver import calibrating
from prunekit.pruning.prunable import check_names, prunable
from prunekit.streaming.checkpoint import check_shapes, empty_tree, fill_tree, open_checkpoint, skeleton
from prunekit.streaming.inputs import first_block_calls, hidden_of


def _cos(a: Tensor, b: Tensor) -> Tensor:
    a, b = a.reshape(-1, a.shape[-1]).double(), b.reshape(-1, b.shape[-1]).double()
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12).clamp(-1.0, 1.0)


def stream_scores(
    source: str | os.PathLike[str],
    batches: Iterable[Batch],
    *,
    inputs_fn: InputsFn | None = None,
    span: int = 1,
    mlp_out: str = "mlp.down_proj",
    o_proj: str = "self_attn.o_proj",
) -> dict[str, Any]:
    """Per block `mlp[b][u]`, `head[b][h]`, `influence[b]`; `angular[l]` per run of `span` blocks; `tokens`."""
    source = Path(source)
    ckpt = open_checkpoint(source)
    model = skeleton(source)
    check_shapes(model, ckpt)
    heads = int(getattr(model.config, "num_attention_heads", 0))
    blocks = find_blocks(model, check_names(prunable(model)))
    batches = list(batches)
    if blocks[0][1] is model or not batches:
        raise UserError("streamed importance needs a model with repeated blocks and calibration batches")
    n = len(blocks)
    scores: dict[str, Any] = {"mlp": [], "head": [], "influence": [], "angular": [0.0] * max(0, n - span + 1)}
    with calibrating(model):
        calls = first_block_calls(model, blocks, ckpt, batches, make_objective(None, inputs_fn))
        boundaries = [[hidden_of(c) for c in calls]]  # the block inputs of the last `span` boundaries
        for b, (name, block) in enumerate(blocks):
            fill_tree(block, f"{name}.", ckpt)
            mlp, head, influence = _block_scores(block, calls, name, heads, mlp_out, o_proj)
            empty_tree(block)
            scores["mlp"].append(mlp)
            scores["head"].append(head)
            scores["influence"].append(influence)
            boundaries.append([hidden_of(c) for c in calls])
            if len(boundaries) > span:
                start = b + 1 - span
                for first, last in zip(boundaries[0], boundaries[-1], strict=True):
                    scores["angular"][start] += float((torch.arccos(_cos(first, last)) / math.pi).sum())
                boundaries.pop(0)
    tokens = sum(hidden_of(c).shape[:-1].numel() for c in calls)
    scale = 1.0 / max(tokens, 1)
    return {
        "mlp": [[v * scale for v in row] for row in scores["mlp"]],
        "head": [[v * scale for v in row] for row in scores["head"]],
        "influence": [v * scale for v in scores["influence"]],
        "angular": [v * scale for v in scores["angular"]],
        "tokens": tokens,
    }


def _block_scores(
    block: nn.Module, calls: list[Call], name: str, heads: int, mlp_out: str, o_proj: str
) -> tuple[list[float], list[float], float]:
    """One block's unit and head sums and influence sum over all calls; `calls` become the next block's."""
    sums: dict[str, Tensor | None] = {"mlp": None, "head": None}

    def on_mlp(_: nn.Module, args: tuple[Any, ...]) -> None:
        a = args[0].detach().abs().reshape(-1, args[0].shape[-1]).double().sum(0)
        sums["mlp"] = a if sums["mlp"] is None else sums["mlp"] + a

    def on_heads(_: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0].detach()
        norms = x.reshape(-1, heads, x.shape[-1] // heads).double().norm(dim=-1).sum(0)
        sums["head"] = norms if sums["head"] is None else sums["head"] + norms

    handles = [block.get_submodule(mlp_out).register_forward_pre_hook(on_mlp)]
    if heads:
        handles.append(block.get_submodule(o_proj).register_forward_pre_hook(on_heads))
    influence = 0.0
    try:
        for i in range(len(calls)):
            h_in = hidden_of(calls[i])
            calls[i] = next_call(calls[i], block(*calls[i][0], **calls[i][1]), name)
            influence += float((1.0 - _cos(h_in, hidden_of(calls[i]))).sum())
    finally:
        for handle in handles:
            handle.remove()
    head = sums["head"].tolist() if sums["head"] is not None else []
    return sums["mlp"].tolist(), head, influence
