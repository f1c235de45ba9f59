"""The steps of a streamed compression (see `compress`): score every block, decide, write every block that stays.

Step k < n (n blocks) scores block k; step n + j writes the j-th block that stays. After each step its result is on
disk (a block's score record `stream/scores-K.json`, the hidden states entering the next block, or the new shard)
before the progress record counts it, so a rerun continues after the last step recorded. The angular distance of a
run of blocks compares the hidden states entering its first block, read back memory-mapped from the file kept for
it, with those leaving its last: only one boundary's hidden states are ever in memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from torch import nn

from prunekit.common.atomic import atomic_write_text
from prunekit.common.batches import Batch, Objective
from prunekit.common.progress import Progress
from prunekit.pruning.compress.compress_model import CompressReport, block_span, combine, count_params, decide
from prunekit.pruning.compress.families import Family, attention_sizes, blocks
from prunekit.pruning.compress.plan import Sizes
from prunekit.pruning.compress.surgery import apply_plan, cut_block
from prunekit.streaming.checkpoint import Checkpoint, empty_tree, fill_tree
from prunekit.streaming.importance import angular_of, magnitudes_of, score_block, scores_of
from prunekit.streaming.inputs import first_block_calls, hidden_of, with_hidden
from prunekit.streaming.output import copy_side_files, shard_name, write_shard
from prunekit.streaming.safetensors_files import write_file
from prunekit.streaming.summary import give_back_memory, peak_rss
from prunekit.streaming.workdir import WorkDir

SUMMARY = "compress_summary.json"


class Compression:
    """The state of one streamed compression: the blocks, where their tensors lie, what has been done."""

    def __init__(
        self,
        model: nn.Module,
        family: Family,
        ckpt: Checkpoint,
        before: Sizes,
        after: Sizes,
        mode: str,
        work: WorkDir,
        settings: dict[str, Any],
        log: Callable[[str], None],
    ) -> None:
        self.model, self.family, self.ckpt, self.mode = model, family, ckpt, mode
        self.before, self.after = before, after
        self.work, self.settings, self.log = work, settings, log
        self.layers = [(f"{family.blocks}.{b}", block) for b, block in enumerate(blocks(model, family))]
        self.blocks_count = len(self.layers)
        self.stored = [[n for n in ckpt.entries if n.startswith(f"{name}.")] for name, _ in self.layers]
        in_blocks = {n for group in self.stored for n in group}
        self.rest = [n for n in ckpt.entries if n not in in_blocks]
        self.span = block_span(before, after)
        self.angular = settings["block_metric"] == "angular" and before.layers > after.layers
        self.magnitude = settings["importance"] == "magnitude"
        self.params_before = count_params(model)
        self.attention = attention_sizes(model, family)
        self.seconds: list[float] = work.progress().get("block_seconds", [])
        self.progress = Progress(self.blocks_count + after.layers, log)

    def _record_path(self, k: int) -> Any:
        return self.work.state / f"scores-{k}.json"

    def score(self, batches: list[Batch], objective: Objective, done: int, after_step: Callable | None) -> None:
        """Steps done..n-1: each block's importance record, the calibration calls carried through the blocks."""
        calls = []
        if batches:
            calls = first_block_calls(self.model, self.layers, self.ckpt, batches, objective)
            if done > 0:
                loaded = self.work.load_hidden(done, on_disk=False)
                calls = [with_hidden(c, h) for c, h in zip(calls, loaded, strict=True)]
            elif self.angular:
                self.work.save_hidden(0, [hidden_of(c) for c in calls])
        tokens = sum(hidden_of(c).shape[:-1].numel() for c in calls)
        self.progress.skip(done)
        for k in range(done, self.blocks_count):
            tick = time.perf_counter()
            name, block = self.layers[k]
            fill_tree(block, f"{name}.", self.ckpt)
            record = score_block(block, name, calls, self.family, self.before.heads, self.magnitude)
            empty_tree(block)
            start = k + 1 - self.span
            if calls:
                record["tokens"] = tokens
                hidden = [hidden_of(c) for c in calls]
                if k + 1 < self.blocks_count:
                    self.work.save_hidden(k + 1, hidden)
                if self.angular and start >= 0:
                    record["angular"] = angular_of(self.work.load_hidden(start, on_disk=True), hidden)
            atomic_write_text(self._record_path(k), json.dumps(record))
            self._step_done(k, tick, f"block {k + 1}/{self.blocks_count} scored")
            self.work.forget_hidden(start if self.angular else k)
            if after_step is not None:
                after_step(k)

    def decide(self, small: nn.Module) -> None:
        """The in-memory decision on the recorded scores; `small` (a skeleton of the same checkpoint, on the meta
        device) is cut to the plan by the in-memory surgery, for the new config and the shapes to write."""
        records = [json.loads(self._record_path(k).read_text()) for k in range(self.blocks_count)]
        self.tokens = int(records[0].get("tokens", 0))
        angular = [r["angular"] for r in records if "angular" in r] if self.angular else []
        measured = scores_of(records, angular, self.tokens)
        weights = magnitudes_of(records) if self.magnitude else None
        scores = combine(self.family, self.before, self.after, measured, weights)
        self.dropped, self.plan = decide(self.before, self.after, scores, self.settings["block_metric"])
        apply_plan(small, self.family, self.plan)
        self.small = small

    def _new_names(self, j: int) -> list[tuple[str, str, int]]:
        """(stored name, new name, bytes written) of the tensors of the j-th block that stays."""
        old = self.layers[self.plan.layers[j]][0]
        out = []
        for stored in self.stored[self.plan.layers[j]]:
            new = f"{self.family.blocks}.{j}.{stored[len(old) + 1 :]}"
            entry = self.ckpt.entries[stored]
            try:
                nbytes = self.small.get_parameter(new).numel() * entry.dtype.itemsize
            except AttributeError:  # not a parameter (a stored buffer): copied as it is
                nbytes = entry.nbytes
            out.append((stored, new, nbytes))
        return out

    def write(self, done: int, after_step: Callable | None) -> None:
        """Steps n + done..: each block that stays, read, cut to the plan, renumbered, written as its shard."""
        count = len(self.plan.layers) + 1
        self.progress.skip(done)
        for j in range(done, len(self.plan.layers)):
            tick = time.perf_counter()
            name, block = self.layers[self.plan.layers[j]]
            fill_tree(block, f"{name}.", self.ckpt)
            cut_block(block, self.family, self.plan, j, self.attention)
            params = dict(block.named_parameters())
            items: list[tuple[str, Any]] = []
            for stored, new, _ in self._new_names(j):
                entry, value = self.ckpt.entries[stored], params.get(stored[len(name) + 1 :])
                if value is None:
                    items.append((new, entry))
                    continue
                if value.shape != self.small.get_parameter(new).shape:
                    raise RuntimeError(f"{new}: cut to {list(value.shape)}, the new config makes it otherwise")
                items.append((new, value.detach().to(entry.dtype)))
            write_file(self.work.path / shard_name(j + 2, count), items, {"format": "pt"})
            del items, params
            empty_tree(block)
            self._step_done(self.blocks_count + j, tick, f"block {j + 1}/{len(self.plan.layers)} written")
            if after_step is not None:
                after_step(self.blocks_count + j)

    def _step_done(self, step: int, tick: float, what: str) -> None:
        give_back_memory()
        self.seconds.append(round(time.perf_counter() - tick, 3))
        self.work.record(step + 1, self.settings, self.seconds)
        self.progress.epoch_done(what, self.seconds[-1], f"peak memory {peak_rss() / 2**20:,.0f} MiB")

    def finish(self, started: float, done: int) -> dict[str, Any]:
        path, count = self.work.path, len(self.plan.layers) + 1
        write_shard(path / shard_name(1, count), self.rest, self.ckpt, {})
        weight_map = {n: shard_name(1, count) for n in self.rest}
        total = sum(self.ckpt.entries[n].nbytes for n in self.rest)
        for j in range(len(self.plan.layers)):
            for _, new, nbytes in self._new_names(j):
                weight_map[new] = shard_name(j + 2, count)
                total += nbytes
        text = json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
        atomic_write_text(path / "model.safetensors.index.json", text + "\n")
        copied = copy_side_files(self.ckpt.root, path)
        self.small.config.architectures = [type(self.small).__name__]
        self.small.config.save_pretrained(path)  # config.json at the new sizes, over the copied one
        steps = self.blocks_count + len(self.plan.layers)
        report = CompressReport(
            self.family.name,
            self.before,
            self.after,
            self.params_before,
            count_params(self.small),
            self.dropped,
            self.settings["importance"],
            self.settings["block_metric"],
            self.mode,
            self.tokens,
            time.perf_counter() - started,
            self.plan,
        )
        summary = {
            "settings": self.settings,
            "report": report.as_dict(),
            "text": str(report),
            "plan": self.plan.as_dict(),
            "steps": steps,
            "resumed_after_step": done,
            "steps_computed": list(range(done, steps)),
            "step_seconds": self.seconds,
            "shards": count,
            "copied": copied,
            "wall_seconds": round(time.perf_counter() - started, 3),
            "peak_rss_bytes": peak_rss(),
            "peak_rss_source": "getrusage(RUSAGE_SELF).ru_maxrss",
        }
        atomic_write_text(path / SUMMARY, json.dumps(summary, indent=1) + "\n")
        self.work.finish()
        self.log(f"wrote {self.work.out}: {report}; peak memory {summary['peak_rss_bytes'] / 2**20:,.0f} MiB")
        return summary
