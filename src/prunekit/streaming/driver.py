"""Post-training pruning of a checkpoint directory one block at a time: memory bounded by one block.

Read the checkpoint's headers and build its model on the meta device; plan every layer's target from shapes (for
allocation "owl", from the outlier ratios of one dense streamed pass, see `owl_pass`); read what precedes the first
block and capture the first block's calibration inputs; then for each block: read its tensors, prune it with the
in-memory per-block routine (`posttrain.driver.prune_block`: the same statistics in the same calibration order, the
same selection, the same SparseGPT update; magnitude through the magnitude criterion), write its shard, run it once
more to make the next block's inputs, record the progress, and empty it. Memory: one block's weights, its method's
statistics (SparseGPT's Hessians) and the calibration hidden states, which `activations="disk"` keeps in a
memory-mapped file instead (`"auto"`: when they would take more than a quarter of the available memory).
A rerun after a kill continues after the last recorded block (see `workdir`). The output equals the in-memory
prune bit for bit, and a resumed run the uninterrupted one, given the same torch thread count (kernels' sums
depend on it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.common.batches import Batch, InputsFn, Objective, make_objective
from prunekit.common.errors import UserError
from prunekit.common.progress import Progress
from prunekit.pruning.masks import transposed_names
from prunekit.pruning.posttrain.blocks import Call, find_blocks, next_call
from prunekit.pruning.posttrain.driver import calibrating
from prunekit.pruning.posttrain.owl import OWL_DEFAULTS, targets_from_ratios
from prunekit.pruning.prunable import check_names, prunable
from prunekit.streaming.checkpoint import Checkpoint, check_shapes, empty_tree, fill_tree, open_checkpoint, skeleton
from prunekit.streaming.inputs import first_block_calls, hidden_of, with_hidden
from prunekit.streaming.output import copy_side_files, shard_name, write_index, write_shard
from prunekit.streaming.owl_pass import outlier_ratios
from prunekit.streaming.plan import Plan, make_plan, prune_block
from prunekit.streaming.settings import available_memory, fingerprint_batches, fingerprint_checkpoint
from prunekit.streaming.summary import SUMMARY, already_done, give_back_memory, peak_rss, write_summary
from prunekit.streaming.workdir import WorkDir, partial_dir


def prune_checkpoint(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    sparsity: float,
    *,
    criterion: str = "magnitude",
    batches: Iterable[Batch] | None = None,
    inputs_fn: InputsFn | None = None,
    scope: str = "global",
    allocation: str = "uniform",
    min_density: float = 0.0,
    ignore: Iterable[str] | None = None,
    pattern: str = "unstructured",
    calibration: str = "block",
    owl: tuple[float, float] = OWL_DEFAULTS,
    activations: str = "auto",
    log: Callable[[str], None] = print,
    after_block: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Prune the checkpoint directory `source` into `out` (a new directory); returns the run's summary."""
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    check_paths(source, out)
    if activations not in ("auto", "memory", "disk"):
        raise UserError(f"activations must be auto, memory or disk, got {activations!r}")
    ckpt = open_checkpoint(source)
    model = skeleton(source)
    check_shapes(model, ckpt)
    names = check_names(prunable(model, ignore=ignore))
    blocks = find_blocks(model, names)
    if blocks[0][1] is model:
        raise UserError(f"the model of {source} has no repeated blocks: it cannot be pruned block by block")
    per_block = [[n for n in names if n.startswith(f"{b}.")] for b, _ in blocks]
    outside = sorted(set(names) - {n for group in per_block for n in group})
    if outside:
        raise UserError(f"layer {outside[0]} is outside the repeated blocks: add it to ignore to stream the rest")
    shapes = {n: tuple(model.get_parameter(n).shape) for n in names}
    plan = make_plan(
        shapes,
        transposed_names(model),
        sparsity,
        criterion=criterion,
        scope=scope,
        allocation=allocation,
        min_density=min_density,
        pattern=pattern,
        calibration=calibration,
    )
    objective = make_objective(None, inputs_fn)
    batches = list(batches or [])
    if plan.calibrated and not batches:
        raise UserError(f"criterion {criterion} needs calibration batches: pass batches")
    settings = {
        "source": str(source.resolve()),
        "checkpoint": fingerprint_checkpoint(ckpt),
        "criterion": criterion,
        "sparsity": float(sparsity),
        "pattern": pattern,
        "scope": scope,
        "allocation": allocation,
        "min_density": float(min_density),
        "ignore": sorted(ignore) if ignore else None,
        "calibration": fingerprint_batches(batches, objective) if plan.calibrated else None,
        "calibration_order": calibration if plan.calibrated else None,
        "owl": list(owl) if allocation == "owl" else None,
    }
    done_before = already_done(out, settings, "prune", log)
    if done_before is not None:
        return done_before
    work = WorkDir(out)
    done = work.start(settings)
    run = _Stream(model, ckpt, blocks, per_block, plan, work, settings, log)
    with calibrating(model):
        calls = run.first_calls(batches, objective, done, activations)
        if allocation == "owl":
            calls = run.owl_targets(
                calls, float(sparsity), owl, lambda: run.first_calls(batches, objective, 0, "memory")
            )
        run.prune_blocks(calls, done, after_block)
    return run.finish(started, done, len(batches))


class _Stream:
    """The state of one streamed prune: which blocks, where their tensors go, what has been done."""

    def __init__(
        self,
        model: nn.Module,
        ckpt: Checkpoint,
        blocks: list[tuple[str, nn.Module]],
        per_block: list[list[str]],
        plan: Plan,
        work: WorkDir,
        settings: dict[str, Any],
        log: Callable[[str], None],
    ) -> None:
        self.model, self.ckpt, self.blocks, self.per_block, self.plan = model, ckpt, blocks, per_block, plan
        self.work, self.settings, self.log = work, settings, log
        self.stored = [[n for n in ckpt.entries if n.startswith(f"{b}.")] for b, _ in blocks]
        in_blocks = {n for group in self.stored for n in group}
        self.rest = [n for n in ckpt.entries if n not in in_blocks]
        self.count = len(blocks) + 1  # shard 1: everything outside the blocks; shard k + 2: block k
        self.on_disk = False
        self.tokens = 0
        self.owl_ratios: dict[str, float] | None = None
        record = work.progress()
        self.seconds: list[float] = record.get("block_seconds", [])
        self.layers: list[dict[str, Any]] = record.get("layers", [])

    def first_calls(self, batches: list[Batch], objective: Objective, done: int, activations: str) -> list[Call]:
        if not self.plan.calibrated:
            return []
        calls = first_block_calls(self.model, self.blocks, self.ckpt, batches, objective)
        hidden = [hidden_of(c) for c in calls]
        self.tokens = sum(h.numel() // h.shape[-1] for h in hidden)
        size = sum(h.numel() * h.element_size() for h in hidden)
        self.on_disk = activations == "disk" or (activations == "auto" and size > available_memory() / 4)
        if 0 < done < len(self.blocks):  # (all done: killed while finishing, nothing left to run)
            loaded = self.work.load_hidden(done, self.on_disk)
            calls = [with_hidden(c, h) for c, h in zip(calls, loaded, strict=True)]
        return calls

    def owl_targets(
        self, calls: list[Call], sparsity: float, owl: tuple[float, float], fresh: Callable[[], list[Call]]
    ) -> list[Call]:
        """Set the plan's targets from the blocks' outlier ratios (measured once, then kept in the progress record);
        returns the calls to prune with (the first block's again when the measuring pass consumed them)."""
        ratios = self.work.progress().get("owl_ratios")
        if ratios is None:
            ratios = outlier_ratios(
                self.model, self.blocks, self.per_block, self.ckpt, calls, self.plan.transposed, owl[0]
            )
            self.work.record(0, self.settings, owl_ratios=ratios)
            calls = fresh()
        self.owl_ratios = ratios
        shapes = {n: self.model.get_parameter(n).shape for group in self.per_block for n in group}
        masks = {n: torch.ones((), dtype=torch.bool).expand(shape) for n, shape in shapes.items()}
        targets, _ = targets_from_ratios(ratios, masks, sparsity, owl[1])
        self.plan = replace(self.plan, targets=targets)
        return calls

    def prune_blocks(self, calls: list[Call], done: int, after_block: Callable[[int], None] | None) -> None:
        progress = Progress(len(self.blocks), self.log)
        progress.skip(done)
        for k in range(done, len(self.blocks)):
            tick = time.perf_counter()
            name, block = self.blocks[k]
            fill_tree(block, f"{name}.", self.ckpt)
            masks = prune_block(self.model, block, self.per_block[k], calls, self.plan)
            changed = {n: self.model.get_parameter(n).detach() for n in masks}
            write_shard(self.work.path / shard_name(k + 2, self.count), self.stored[k], self.ckpt, changed)
            if calls and k + 1 < len(self.blocks):
                self._advance(block, name, calls, k + 1)
            kept, total = sum(int(m.sum()) for m in masks.values()), sum(m.numel() for m in masks.values())
            self.layers += [{"name": n, "shape": list(m.shape), "kept": int(m.sum())} for n, m in masks.items()]
            self.seconds.append(round(time.perf_counter() - tick, 3))
            self.work.record(k + 1, self.settings, self.seconds, self.layers, self.owl_ratios)
            self.work.forget_hidden(k)
            empty_tree(block)
            del changed
            give_back_memory()
            details = f"{len(masks)} layers pruned to {1 - kept / max(total, 1):.1%}"
            progress.epoch_done(
                f"block {k + 1}/{len(self.blocks)}",
                self.seconds[-1],
                f"{details}, peak memory {peak_rss() / 2**20:,.0f} MiB",
            )
            if after_block is not None:
                after_block(k)

    def _advance(self, block: nn.Module, name: str, calls: list[Call], k: int) -> None:
        """Replace the calls by the next block's (the pruned block's outputs), and save them for a resume."""
        if not self.on_disk:
            for i in range(len(calls)):  # replaced one by one (no loop variable keeps an old one alive)
                calls[i] = next_call(calls[i], block(*calls[i][0], **calls[i][1]), name)
            self.work.save_hidden(k, [hidden_of(c) for c in calls])
            return
        tmp, mapped = self.work.mapped_hidden(k, [hidden_of(c) for c in calls])
        for i in range(len(calls)):
            hidden = hidden_of(next_call(calls[i], block(*calls[i][0], **calls[i][1]), name))
            if hidden.shape != mapped[i].shape or hidden.dtype != mapped[i].dtype:
                raise UserError(f"block {name} changes the shape of its hidden state: cannot keep it on disk")
            mapped[i].copy_(hidden)
            calls[i] = with_hidden(calls[i], mapped[i])
        self.work.commit_mapped(tmp, k, mapped)

    def finish(self, started: float, done: int, batches: int) -> dict[str, Any]:
        path = self.work.path
        write_shard(path / shard_name(1, self.count), self.rest, self.ckpt, {})
        weight_map = {n: shard_name(1, self.count) for n in self.rest}
        for k, stored in enumerate(self.stored):
            weight_map.update({n: shard_name(k + 2, self.count) for n in stored})
        write_index(path, {n: weight_map[n] for n in self.ckpt.entries}, self.ckpt)
        copied = copy_side_files(self.ckpt.root, path)
        summary = {
            "settings": self.settings,
            "blocks": len(self.blocks),
            "resumed_after_block": done,
            "blocks_computed": list(range(done, len(self.blocks))),
            "calibration": {"batches": batches, "tokens": self.tokens} if self.plan.calibrated else None,
            "owl_ratios": self.owl_ratios,
            "activations": "disk" if self.on_disk else "memory",
            "shards": self.count,
            "copied": copied,
            "block_seconds": self.seconds,
            "wall_seconds": round(time.perf_counter() - started, 3),
        }
        summary = write_summary(path, summary, self.layers)
        self.work.finish()
        self.log(
            f"wrote {self.work.out}: sparsity {summary['sparsity']:.4f} over {len(self.layers)} layers, "
            f"peak memory {summary['peak_rss_bytes'] / 2**20:,.0f} MiB ({SUMMARY})"
        )
        return summary


def check_paths(source: Path, out: Path) -> None:
    if not str(out).strip():
        raise UserError("the output directory is empty: give a directory name")
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise UserError(f"the output {out} is the input directory or inside it: write the pruned checkpoint elsewhere")
    if dst in src.parents or dst == partial_dir(src):
        raise UserError(f"the output {out} contains the input directory: write the pruned checkpoint elsewhere")
