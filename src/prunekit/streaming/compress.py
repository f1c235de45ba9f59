"""Structured compression of a checkpoint directory that never holds more than one block in memory.

    prunekit.compress("llama-dir", 0.25, batches=calibration, depth=True, out="llama-dir-smaller")

The same compression as `prunekit.compress` on the loaded model (`prunekit.pruning.compress`), in two streamed
passes over the blocks. Scoring: build the model on the meta device, read only what precedes block 0 to make the
calibration inputs, then read each block, measure its importance sums (MLP units, query heads, block influence,
the angular distance of runs of blocks; weight norms for magnitude importance), run it to make the next block's
inputs, and empty it. Deciding: the in-memory code (`compress_model.target`, `combine`, `decide`) on the same
scores, so the same blocks, heads and units stay. Writing: for each block that stays, read it, cut it with the
in-memory surgery (`surgery.cut_block`), write it renumbered as its own shard; then the tensors outside the blocks
(copied as bytes), the index, and config.json at the new sizes (the in-memory `apply_plan` run on a model on the meta
device). Every step is recorded (see `workdir`): a rerun after a kill resumes after the last one, with identical
output. The result loads with `AutoModelForCausalLM.from_pretrained` and equals, tensor for tensor and bit for bit,
`save_pretrained` of the model compressed in memory from the same calibration batches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prunekit.common.batches import Batch, InputsFn, make_objective
from prunekit.common.errors import UserError
from prunekit.pruning.compress.compress_model import target
from prunekit.pruning.compress.families import family_of
from prunekit.pruning.posttrain.driver import calibrating
from prunekit.streaming.checkpoint import check_shapes, open_checkpoint, skeleton
from prunekit.streaming.compress_steps import SUMMARY, Compression
from prunekit.streaming.driver import check_paths
from prunekit.streaming.settings import fingerprint_batches, fingerprint_checkpoint
from prunekit.streaming.summary import already_done
from prunekit.streaming.workdir import WorkDir

NOT_STREAMED = "hidden-size removal is not streamed yet; compress the model in memory"


def compress_checkpoint(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fraction: float | None = None,
    *,
    batches: Iterable[Batch] | None = None,
    width: bool = True,
    depth: bool = False,
    heads: str = "groups",
    importance: str = "activation",
    block_metric: str = "influence",
    depth_share: float = 0.5,
    round_to: int = 8,
    sizes: dict[str, int] | None = None,
    inputs_fn: InputsFn | None = None,
    log: Callable[[str], None] = print,
    after_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Compress the checkpoint directory `source` into `out` (a new directory); returns the summary (also
    out/compress_summary.json): the report of `prunekit.compress`, the plan, the time per step, the peak memory."""
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    check_paths(source, out)
    ckpt = open_checkpoint(source)
    model = skeleton(source)
    check_shapes(model, ckpt)
    family = family_of(model)
    batches = list(batches or [])
    options = (fraction, sizes, width, depth, heads, importance, block_metric, depth_share, round_to, batches)
    before, after, mode = target(model, family, *options)
    if after.hidden < before.hidden:
        raise UserError(NOT_STREAMED)
    objective = make_objective(None, inputs_fn)
    settings = {
        "source": str(source.resolve()),
        "checkpoint": fingerprint_checkpoint(ckpt),
        "fraction": None if fraction is None or sizes is not None else float(fraction),
        "sizes": {k: int(v) for k, v in sorted(sizes.items())} if sizes is not None else None,
        "width": bool(width),
        "depth": bool(depth),
        "heads": mode,
        "importance": importance,
        "block_metric": block_metric,
        "depth_share": float(depth_share),
        "round_to": int(round_to),
        "calibration": fingerprint_batches(batches, objective) if batches else None,
    }
    done_before = already_done(out, settings, "compression", log, SUMMARY)
    if done_before is not None:
        return done_before
    work = WorkDir(out)
    done = work.start(settings)
    run = Compression(model, family, ckpt, before, after, mode, work, settings, log)
    if done < run.blocks_count:
        with calibrating(model):
            run.score(batches, objective, done, after_step)
    run.decide(skeleton(source))
    run.write(max(done - run.blocks_count, 0), after_step)
    return run.finish(started, done)
