"""The runner: executes a method's rounds with a Task, keeps the run directory through a Store, resumes.

Roles (docs/design.md): the method's plans say what each round does; the Task builds, trains
and evaluates the network; the Store owns the files. The Run in between prunes and sequences: each finished round
is one checkpoint holding its weights, masks and record; an unfinished round has an epoch checkpoint (weights,
masks, optimizer state). Every random draw is seeded by (seed, round, epoch), so a resumed run replays exactly
what an uninterrupted one does. Unstructured runs keep boolean masks; channel runs physically thin the model, and
their checkpoints record the narrowed architecture. Under torchrun the same Run runs on every rank
(docs/distributed.md): the Store shares rank 0's files, pruning is decided on rank 0 and shared, and weights are
checked identical after every round; the Task shards the data.

The pieces it sequences live in `prunekit.runner`: config checks and seeds (checks), the pruning decision of a round
(prune), the training loop of a round (train), a finished round's record (records) and the lottery-ticket controls
(controls).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit import distributed
from prunekit.common.errors import UserError
from prunekit.common.progress import Progress
from prunekit.common.threads import choose_threads
from prunekit.common.wording import plural
from prunekit.config import Config
from prunekit.pruning.flops import is_shape
from prunekit.pruning.masks import Masks, dense_masks
from prunekit.pruning.methods import METHODS, RoundPlan
from prunekit.pruning.prunable import Coverage, check_names, coverage_record, prunable
from prunekit.runner import agree
from prunekit.runner.checks import check_config, pick_device, seed_for
from prunekit.runner.controls import control_start, wants_control
from prunekit.runner.memory import check_fits
from prunekit.runner.progress_check import checked_progress
from prunekit.runner.prune import decide, pruned_score
from prunekit.runner.records import round_record, with_learned
from prunekit.runner.train import train_round
from prunekit.store import checkpoint
from prunekit.store.directory import Store
from prunekit.tasks import Task, build_task
from prunekit.trackers import Trackers
from prunekit.train.optim import finetune_warning, make_optimizer

# check_config, pick_device and seed_for live in prunekit.runner.checks; importable from here as they always were
__all__ = ["Run", "check_config", "pick_device", "run", "seed_for"]


class Run:
    """One experiment in one directory. `execute()` runs or resumes it and returns the summary.

    task: what trains the network (default: the config's model and dataset, in memory). writes: False for a Run
    that only reads the directory. Under torchrun (WORLD_SIZE > 1) the Run joins the process group; only rank 0
    writes and logs.
    """

    def __init__(
        self,
        cfg: Config,
        out: str | Path,
        log: Callable[[str], None] = print,
        *,
        task: Task | None = None,
        writes: bool = True,
    ) -> None:
        check_config(cfg)
        self.world, self._joined = distributed.join(cfg.device)
        self.cfg, self.log, self.task = cfg, log if self.world.main else _quiet, task
        self.store = Store(out, writes=writes, world=self.world)
        self.out = self.store.out
        self.channel = cfg.prune.structure == "channel"
        self.compressing = cfg.prune.structure == "compress"  # a Hugging Face decoder made smaller (runner.compress)
        self.compressed: dict[str, Any] | None = None  # the shape record of the compressed model, once it is
        self.trackers = Trackers(cfg, self.out, enabled=False)

    # --- set-up: everything is validated before the directory is touched --------------------------------------
    def execute(self) -> dict[str, Any]:
        try:
            if self.store.is_dir():  # an existing directory: refuse a busy or different run before loading any data
                self.store.open(self.cfg)
            self._setup()
            self.store.open(self.cfg)  # nothing is created on disk before the config, model and data check out
            self.store.claim(self.cfg)
            self.trackers = Trackers(self.cfg, self.out, enabled=self.store.writes)  # TensorBoard, MLflow: rank 0
            return self._execute()
        finally:
            self.trackers.close()
            self.store.close()
            distributed.leave(self._joined)

    def _setup(self) -> None:
        self.device = pick_device(self.cfg.device, self.world)
        if self.world.distributed:
            threads, line = distributed.thread_budget(self.cfg.threads, self.world)
            torch.set_num_threads(threads)
            self.log(line)
        else:
            threads, warning = choose_threads(self.cfg.threads)  # null = physical cores, 1 on a busy machine
            torch.set_num_threads(threads)
            if warning:
                self.log(f"warning: {warning}")
        task = self.task if self.task is not None else build_task(self.cfg)
        task.to(self.device)
        self.task = task
        torch.manual_seed(self.cfg.seed)
        self.model = task.build_model()
        check_fits(self.model, self.device.type)  # before the copies a run makes (prunekit.runner.memory)
        self.model = self.model.to(self.device)
        self.arch = getattr(self.model, "arch", None)
        if self.compressing:  # a model compress cannot cut is refused before the run directory is made
            from prunekit.runner.compress import decoder_in

            decoder_in(self.model)
        self.base = self._unpruned()
        self.example = self._example()
        if self.cfg.prune.tau == "auto" and not task.has_split("val"):
            raise UserError("prune.tau auto compares validation metrics: give the run a validation split")
        self.coverage = self._coverage()
        self.names = check_names(self.coverage)
        self.init_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.dense_params = sum(p.numel() for p in self.model.parameters())
        self.plans = METHODS.get(self.cfg.prune.method)(self.cfg, self._sizes())
        warning = finetune_warning(self.cfg.train, self.cfg.prune.finetune_lr)
        if warning and any(p.schedule == "finetune" and p.epochs for p in self.plans):
            warnings.warn(warning, stacklevel=2)

    def _sizes(self) -> dict[str, int]:
        """What methods plan over: prunable tensors' numels, or for channel runs the channel groups' widths."""
        if self.channel:
            from prunekit.pruning.structured import group_widths

            example = None if isinstance(self.example, tuple) else self.example
            return group_widths(self.model, self.cfg.prune.ignore or (), example)
        return {n: p.numel() for n, p in self.model.named_parameters() if n in self.names}

    def _coverage(self) -> Coverage:
        """The tensors this run prunes: prune.ignore null protects the output layer (the zoo's declared one, a user
        model's traced on one example of its inputs); a list replaces that default, as it always has."""
        p = self.cfg.prune
        include = p.ignore is not None if p.include_output is None else p.include_output
        shape = is_shape(self.example)
        return prunable(
            self.model,
            include_embeddings=p.include_embeddings,
            include_output=include,
            ignore=p.ignore,
            example_inputs=None if shape else self.example,
        )

    def _unpruned(self) -> nn.Module | None:
        """Channel runs: the unpruned network that widths are measured against (the zoo rebuilds it from `arch`
        on the meta device; a user's model is built once more with the task's factory)."""
        if not self.channel:
            return None
        from prunekit.pruning.structured import base_model

        return base_model(self.model) or self._fresh_model()

    def _example(self) -> Any:
        """What FLOPs, latency and tracing run on: the zoo's input shape, else one example of the task's data."""
        if isinstance(self.arch, dict) and self.arch.get("input_shape"):
            return tuple(self.arch["input_shape"])
        return self.task.example_input()

    def _execute(self) -> dict[str, Any]:
        pending = [p for p in self.plans if not self.store.has_round(p.index)]
        controls = [p for p in self.plans if self._wants_control(p)]
        if not pending and not controls:
            self.log(f"{self.out}: all {plural(len(self.plans), 'round')} already finished; nothing to train")
        self.progress = Progress(sum(p.epochs for p in pending) + sum(p.epochs for p in controls), self.log)
        if len(pending) < len(self.plans):  # rounds already on disk (a resume, a copied round 0): readable at once
            self.write_summary(track=False)
        for plan in self.plans:
            if not self.store.has_round(plan.index):
                self._run_round(plan)
            self._run_control(plan)
        summary = self.write_summary()
        if self.store.writes:
            from prunekit.report import write_run_report

            write_run_report(self.out)
            self.trackers.finish(self.out, summary)
        return summary

    # --- the network a round starts from ---------------------------------------------------------------------
    def _base(self, plan: RoundPlan) -> tuple[dict[str, torch.Tensor], Masks]:
        if plan.base is None:
            self._reshape(None)
            return self.init_state, {} if self.channel or self.compressing else dense_masks(self.model, self.names)
        state, masks, record, _ = self.store.load(self.store.round_path(plan.base))
        self._reshape(record.get("shape"))
        return state, self._ordered(masks)

    def _fresh_model(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the global RNG untouched
            return self.task.build_model().to(self.device)

    def _reshape(self, shape: dict[str, Any] | None) -> None:
        """Channel and compress runs: rebuild the model as thin as `shape` records (None: the base architecture)."""
        if self.compressing:
            from prunekit.runner.compress import reshape

            self.compressed = shape if shape and "compress" in shape else None
            self.model = reshape(self._fresh_model(), self.compressed).to(self.device)
        if self.channel:
            from prunekit.export.compact import narrow

            model = self._fresh_model()
            if shape:  # a damaged table (not a dict, no modules) is narrow's one-line refusal
                table = shape if isinstance(shape, dict) else {}
                narrow(model, table.get("modules"), table.get("shapes") or {}, "the run checkpoint")
            self.model = model.to(self.device)

    def _ordered(self, masks: Masks) -> Masks:
        """Masks in module order (files store them sorted otherwise); the order breaks ties in global ranking. A
        checkpoint that masks other tensors than this config prunes (one copied from a run with other prune.ignore
        or include_* settings) is refused in one line."""
        if self.channel or self.compressing:
            return {}
        missing = [n for n in self.names if n not in masks]
        if missing:
            raise UserError(
                f"a checkpoint in {self.out} has no mask for {missing[0]}, which this config prunes: it comes from a "
                "run with other prune.ignore / include_output / include_embeddings settings; use that run's settings "
                "or delete the checkpoint"
            )
        return {n: masks[n] for n in self.names}

    def _start_state(self, plan: RoundPlan, base_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights a round trains from, after pruning: theta_0, the rewind point, or the base weights."""
        if plan.weights == "init" or (plan.weights == "rewind" and not plan.start_epoch):
            return self.init_state
        if plan.weights == "rewind":
            return self.store.load(self.store.rewind_path)[0]  # written when round 0 passed epoch K
        return base_state

    # --- pruning -----------------------------------------------------------------------------------------------
    def _prune(self, plan: RoundPlan, masks: Masks, target: float | None = None) -> Masks:
        """Masks at `target` (default: the plan's), by the run's criterion, scope and allocation; decided once, on
        rank 0, and given to every rank (one process: decided here)."""
        what, choose = f"the pruning of round {plan.index}", lambda: decide(self, plan, masks, target)
        if self.channel or self.compressing:
            agree.agree_on_architecture(self.world, choose, self.model, what)
            return {}
        return agree.agree_on_masks(self.world, choose, self.model, masks, what)

    def _pruned_score(self, masks: Masks) -> float | None:
        """Test metric of the network just pruned, before any rewinding or retraining (the no-retraining point)."""
        return pruned_score(self.model, self.task, masks, self.cfg.train.eval_batch_size)

    def _key(self, prefix: str = "") -> str:
        """Record key of the task's metric: `{prefix}accuracy`, or `{prefix}metric` for any other metric."""
        return prefix + ("accuracy" if self.task.metric.name == "accuracy" else "metric")

    # --- one round ---------------------------------------------------------------------------------------------
    def _run_round(self, plan: RoundPlan) -> None:
        epoch_path = self.store.epoch_path(plan.index)
        if self.store.exists(epoch_path):
            state, masks, progress, opt = self.store.load(epoch_path)
            progress = checked_progress(progress, plan.epochs, self._key("val_"), epoch_path)
            masks = self._ordered(masks)
            self._reshape(progress.get("shape"))
            checkpoint.load_weights(self.model, state, epoch_path)  # a damaged file is named (exit 2)
            optimizer = make_optimizer(self.model.parameters(), self.cfg.train)
            checkpoint.restore_optimizer(optimizer, opt, epoch_path)
            self.progress.skip(progress["epochs_done"])
            self.log(f"round {plan.index}: resuming after epoch {progress['epochs_done']}")
        else:
            state, masks = self._base(plan)
            source = "the initial weights" if plan.base is None else self.store.round_path(plan.base)
            checkpoint.load_weights(self.model, state, source)  # a damaged file is named (exit 2)
            started = time.perf_counter()
            pruned = None
            if plan.sparsity is not None:
                masks = self._prune(plan, masks)
            prune_seconds = round(time.perf_counter() - started, 3) if plan.sparsity is not None else None
            if plan.sparsity is not None:
                pruned = self._pruned_score(masks)  # after the prune timing: an evaluation is not pruning
            if plan.weights != "keep":
                self.model.load_state_dict(self._start_state(plan, state))
            progress = {"epochs_done": 0, "seconds": 0.0, "history": [], "shape": self.shape(), "pruned": pruned}
            progress["prune_seconds"] = prune_seconds  # pruning time, reported beside the training time
            optimizer = make_optimizer(self.model.parameters(), self.cfg.train)  # after surgery: new parameters
        seconds = self._train(plan, masks, optimizer, progress, epoch_path)
        distributed.check_model(self.model, masks, f"the weights of round {plan.index}", self.world)
        record = {
            **with_learned(self._record(plan, masks, seconds, progress["epochs_done"]), progress.get("learned")),
            "prune_seconds": progress.get("prune_seconds"),
        }
        record[self._key("pruned_")] = progress.get("pruned")
        extra = {"history": progress["history"], "shape": self.shape()}
        self.store.save(self.store.round_path(plan.index), self.model.state_dict(), masks, {**record, **extra})
        self.store.discard(epoch_path)
        self.write_summary()
        self.log(
            f"round {plan.index}/{len(self.plans) - 1}: sparsity {record['sparsity']:.2%}{self._channels(record)}  "
            "test "
            f"{self.task.metric.name} {self.task.metric.format(self._score(record))}  "
            f"({plural(record['epochs'], 'epoch')}, {record['wall_seconds']:.1f} s)"
        )

    @staticmethod
    def _channels(record: dict[str, Any]) -> str:
        """Channel runs: the channel and FLOP fractions removed, beside the weights' sparsity in the round's line."""
        if record.get("channel_fraction") is None:
            return ""
        flops = record.get("flops_removed")
        return f" (channels {record['channel_fraction']:.2%}" + ("" if flops is None else f", FLOPs {flops:.2%}") + ")"

    def shape(self) -> dict[str, Any] | None:
        """Channel runs: the architecture record of the model as thin as it is now (None for unstructured runs);
        compress runs: the plan that cut it (None while it is whole)."""
        if self.compressing:
            return self.compressed
        if not self.channel:
            return None
        from prunekit.runner.channel_rounds import shape_record

        return shape_record(self.model, self.base)

    def _train(
        self,
        plan: RoundPlan,
        masks: Masks,
        optimizer: torch.optim.Optimizer,
        progress: dict[str, Any],
        epoch_path: Path | None,
        stream: int = 0,
    ) -> float:
        """Train the masked model through the rest of the round (prunekit.runner.train); returns its seconds so far.
        A training hook prunes through `_prune`, so it too is decided on rank 0. A plan that distils trains on the
        distillation loss from its base round (prunekit.runner.distill)."""
        from prunekit.runner.distill import distilling

        with distilling(self, plan):
            return train_round(
                self, plan, masks, optimizer, progress, epoch_path, stream, lambda t: self._prune(plan, masks, t)
            )

    def _wants_control(self, plan: RoundPlan) -> bool:
        return wants_control(self.cfg, self.store, plan)

    def _run_control(self, plan: RoundPlan) -> None:
        """The lottery-ticket control of a pruned round (prunekit.runner.controls), trained and recorded beside it."""
        kind = self.cfg.prune.control
        if not self._wants_control(plan):
            return
        masks = self._ordered(self.store.load(self.store.round_path(plan.index))[1])
        base_state, _ = self._base(plan)
        start = self._start_state  # called only by the random control: reinit never reads the round's start weights
        state, masks = control_start(self.cfg, plan, masks, lambda: start(plan, base_state), self.task.build_model)
        self.model.load_state_dict(state)
        optimizer = make_optimizer(self.model.parameters(), self.cfg.train)
        progress = {"epochs_done": 0, "seconds": 0.0, "history": []}
        seconds = self._train(plan, masks, optimizer, progress, None, stream=1)
        record = self._record(plan, masks, seconds, progress["epochs_done"])
        record = {**record, "history": progress["history"], "control": kind}
        self.store.save(self.store.control_path(plan.index), self.model.state_dict(), masks, record)
        self.write_summary()
        metric = self.task.metric
        self.log(f"round {plan.index} control ({kind}): test {metric.name} {metric.format(self._score(record))}")

    def _record(self, plan: RoundPlan, masks: Masks, seconds: float, epochs: int) -> dict[str, Any]:
        return round_record(self, plan, masks, seconds, epochs)

    def _score(self, record: dict[str, Any]) -> float | None:
        return record["test_accuracy"] if self.task.metric.name == "accuracy" else record["test_metric"]

    def write_summary(self, track: bool = True) -> dict[str, Any]:
        indices = [plan.index for plan in self.plans]
        extra = {
            "metric": self.task.metric.as_dict(),
            "model": self.task.model_name,
            "dataset": self.task.dataset_name,
            "coverage": coverage_record(self.coverage),
            "processes": self.world.size,
        }
        summary = self.store.write_summary(self.cfg, self.arch, str(self.device), indices, extra)
        if track:
            self.trackers.rounds(summary)
        return summary


def _quiet(_: str) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""


def run(
    cfg: Config, out: str | Path, log: Callable[[str], None] = print, *, task: Task | None = None
) -> dict[str, Any]:
    return Run(cfg, out, log, task=task).execute()
