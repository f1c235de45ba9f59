"""Pruning decided once: rank 0 scores and chooses, every rank receives the result, a checksum proves it.

Rank 0 runs the criterion exactly as one process would (the same score batches, drawn from the whole training set,
the same generator), so data-driven criteria (SNIP, GraSP, Taylor, ThiNet) give the masks a one-process run gives
from the same weights. The other ranks receive the masks and the buffers (scoring may move BatchNorm statistics),
or, for channel pruning, the thinner architecture and every tensor (ThiNet rescales the kept weights). Then all
ranks compare an all-reduced checksum of weights and masks and raise if any differs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from prunekit.distributed.collectives import check_model, check_same, share
from prunekit.distributed.world import World
from prunekit.pruning.masks import Masks, apply_masks


def agree_on_masks(world: World, decide: Callable[[], Masks], model: nn.Module, masks: Masks, what: str) -> Masks:
    """Rank 0's `decide()` masks on every rank, applied to the weights; one process: just `decide()`."""
    if not world.distributed:
        return decide()

    def on_rank0() -> dict:
        chosen = decide()
        return {"masks": chosen, "buffers": dict(model.named_buffers())}

    got = share(on_rank0, world)
    chosen = got["masks"]
    if not world.main:
        chosen = {n: chosen[n].to(m.device) for n, m in masks.items()}
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(got["buffers"][name])
    apply_masks(model, chosen)
    check_model(model, chosen, what, world)
    return chosen


def agree_on_architecture(world: World, decide: Callable[[], object], model: nn.Module, what: str) -> None:
    """Rank 0's channel surgery (`decide()` thins `model` in place) repeated on every rank's model, in place."""
    if not world.distributed:
        decide()
        return
    from prunekit.export.compact import narrow
    from prunekit.runner.channel_rounds import shape_record

    def on_rank0() -> dict:
        decide()
        return {"shape": shape_record(model), "state": model.state_dict()}

    got = share(on_rank0, world)
    if not world.main:
        shape, state = got["shape"], got["state"]
        current = {k: list(v.shape) for k, v in model.state_dict().items()}
        changed = {  # only modules whose tensors change shape get new parameters, as on rank 0
            name: spec
            for name, spec in (shape.get("modules") or {}).items()
            if any(current.get(k) != v for k, v in shape["shapes"].items() if k.rsplit(".", 1)[0] == name)
        }
        if changed:
            narrow(model, changed, shape["shapes"], "rank 0's pruned architecture")
        model.load_state_dict(state)
    check_same(model.state_dict(), what, world)
