"""The importance scores of structured compression, measured streamed from a checkpoint directory, a block at a time.

`score_block` runs one block (filled from disk) over the calibration calls and returns its sums: each MLP unit's
|activation| into the down projection, each query head's output norm (the input of o_proj), ShortGPT's block
influence 1 - cos(h_in, h_out), and, for magnitude importance, its weight norms. The per-batch sums are those of
`prunekit.pruning.compress.importance` (Minitron, ShortGPT, Gromov), added in the same order, so the scores equal the
in-memory ones bit for bit; `scores_of` turns the blocks' records (plain lists, kept as JSON for a resume) into
the `Scores` the in-memory decision reads. `stream_scores` measures them for a whole checkpoint in one go.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import Batch, InputsFn, make_objective
from prunekit.common.errors import UserError
from prunekit.pruning.compress.families import Family, blocks, family_of
from prunekit.pruning.compress.importance import (
    Scores,
    angular_sum,
    block_magnitude,
    from_sums,
    head_sums,
    influence_sum,
    unit_sums,
)
from prunekit.pruning.posttrain.blocks import Call, next_call
from prunekit.pruning.posttrain.driver import calibrating
from prunekit.streaming.checkpoint import check_shapes, empty_tree, fill_tree, open_checkpoint, skeleton
from prunekit.streaming.inputs import first_block_calls, hidden_of


def score_block(
    block: nn.Module, name: str, calls: list[Call], family: Family, heads: int, magnitude: bool
) -> dict[str, Any]:
    """One block's record: `mlp`, `head` (sums over all calls' tokens) and `influence` when there are calls, which
    become the next block's; `magnitude` ([units, heads] weight norms) when asked."""
    record: dict[str, Any] = {}
    if magnitude:
        record["magnitude"] = list(block_magnitude(block, family, heads))
    if not calls:
        return record
    sums: dict[str, Tensor | None] = {"mlp": None, "head": None}

    def adder(key: str, measure: Any) -> Any:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            value = measure(args[0])
            sums[key] = value if sums[key] is None else sums[key] + value

        return hook

    handles = [block.get_submodule(family.mlp_out).register_forward_pre_hook(adder("mlp", unit_sums))]
    if family.heads:
        o = block.get_submodule(f"{family.attention}.{family.o}")
        handles.append(o.register_forward_pre_hook(adder("head", lambda x: head_sums(x, heads))))
    influence = 0.0
    try:
        for i in range(len(calls)):  # replaced one by one (no loop variable keeps an old one alive)
            h_in = hidden_of(calls[i])
            calls[i] = next_call(calls[i], block(*calls[i][0], **calls[i][1]), name)
            influence += influence_sum(h_in, hidden_of(calls[i]))
    finally:
        for handle in handles:
            handle.remove()
    if sums["mlp"] is None:
        raise UserError(f"block {name} did not run its {family.mlp_out} on the calibration batches")
    record["mlp"] = sums["mlp"].tolist()
    record["head"] = sums["head"].tolist() if sums["head"] is not None else None
    record["influence"] = influence
    return record


def angular_of(first: list[Tensor], last: list[Tensor]) -> float:
    """The angular distance between two boundaries' hidden states, summed over every call's tokens in order."""
    total = 0.0
    for a, b in zip(first, last, strict=True):
        total += angular_sum(a, b)
    return total


def scores_of(records: list[dict[str, Any]], angular: list[float], tokens: int) -> Scores | None:
    """The activation scores of the blocks' records (None without calibration)."""
    if not records or "mlp" not in records[0]:
        return None
    mlp = [torch.tensor(r["mlp"], dtype=torch.float64) for r in records]
    head = [torch.tensor(r["head"], dtype=torch.float64) if r["head"] is not None else None for r in records]
    return from_sums(mlp, head, [r["influence"] for r in records], angular, tokens)


def magnitudes_of(records: list[dict[str, Any]]) -> tuple[list[list[float]], list[list[float]]]:
    return [r["magnitude"][0] for r in records], [r["magnitude"][1] for r in records]


def stream_scores(
    source: str | os.PathLike[str], batches: Iterable[Batch], *, inputs_fn: InputsFn | None = None, span: int = 1
) -> Scores:
    """The activation scores of a checkpoint's blocks (`angular[l]` per run of `span` blocks), one block in memory."""
    source = Path(source)
    ckpt = open_checkpoint(source)
    model = skeleton(source)
    check_shapes(model, ckpt)
    family = family_of(model)
    layers = [(f"{family.blocks}.{b}", block) for b, block in enumerate(blocks(model, family))]
    batches = list(batches)
    if not batches:
        raise UserError("streamed importance needs calibration batches")
    heads = int(getattr(model.config, "num_attention_heads", 0))
    records, angular = [], []
    with calibrating(model):
        calls = first_block_calls(model, layers, ckpt, batches, make_objective(None, inputs_fn))
        tokens = sum(hidden_of(c).shape[:-1].numel() for c in calls)
        boundaries = [[hidden_of(c) for c in calls]]  # the block inputs of the last `span` boundaries
        for name, block in layers:
            fill_tree(block, f"{name}.", ckpt)
            records.append(score_block(block, name, calls, family, heads, magnitude=False))
            empty_tree(block)
            boundaries.append([hidden_of(c) for c in calls])
            if len(boundaries) > span:
                angular.append(angular_of(boundaries.pop(0), boundaries[-1]))
    scores = scores_of(records, angular, tokens)
    assert scores is not None
    return scores
