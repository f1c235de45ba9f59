"""The runner: executes a method's rounds with a Task, keeps the run directory through a Store, resumes.

Roles (DESIGN.md, "Growing past the zoo"): the method's plans say what each round does; the Task builds, trains
and evaluates the network; the Store owns the files. The Run in between prunes and sequences: each finished round
is one checkpoint holding its weights, masks and record; an unfinished round has an epoch checkpoint (weights,
masks, optimizer state). Every random draw is seeded by (seed, round, epoch), so a resumed run replays exactly
what an uninterrupted one does. Unstructured runs keep boolean masks; channel runs physically thin the model, and
their checkpoints record the narrowed architecture. Under torchrun the same Run runs on every rank
(docs/distributed.md): the Store shares rank 0's files, pruning is decided on rank 0 and shared, and weights are
checked identical after every round; the Task shards the data.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit import checkpoint, distributed
from prunekit.config import Config
from prunekit.errors import UserError
from prunekit.flops import is_shape, sparse_flops
from prunekit.progress import Progress
from prunekit.pruning import allocation
from prunekit.pruning.coverage import layouts
from prunekit.pruning.criteria import ScoreContext
from prunekit.pruning.masks import (
    MaskEnforcer,
    Masks,
    apply_masks,
    dense_masks,
    layer_report,
    remaining_params,
    sparsity,
)
from prunekit.pruning.methods import METHODS, RoundPlan
from prunekit.pruning.methods.hooks import TRAINING_HOOKS, HookContext
from prunekit.pruning.prunable import Coverage, check_names, coverage_record, prunable
from prunekit.pruning.step import check_criterion, fixed_by_ratios, prune_to, wants_data
from prunekit.store import Store
from prunekit.tasks import Task, build_task
from prunekit.threads import choose_threads
from prunekit.trackers import Trackers
from prunekit.train.optim import finetune_lr, finetune_warning, lr_at, make_optimizer
from prunekit.wording import plural


def pick_device(name: str, world: distributed.World = distributed.SOLO) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda requested but CUDA is not available; use device: auto or cpu")
    if world.backend == "nccl":
        return torch.device("cuda", world.local_rank)
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def seed_for(seed: int, *parts: int) -> int:
    value = seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**63 - 1)
    return value


def check_config(cfg: Config) -> None:
    """Everything about the config that needs no data or model: method, criterion, allocation, their pairing."""
    p = cfg.prune
    METHODS.get(p.method)
    if p.structure == "channel":
        from prunekit.pruning.structured import CHANNEL_CRITERIA

        CHANNEL_CRITERIA.get(p.criterion)
        if p.method not in ("oneshot", "imp", "gradual", "amc", "sequential"):
            raise UserError(
                f"prune.structure channel works with method oneshot, imp, gradual, amc or sequential, not {p.method}"
            )
        if p.method == "imp" and p.rewind not in ("lr", "finetune"):
            raise UserError("channel pruning retrains the pruned weights: set prune.rewind to lr or finetune")
        if p.control != "none" or p.layer_rate:
            raise UserError("prune.control and prune.layer_rate apply to unstructured pruning only")
    else:
        if p.method == "sequential":
            raise UserError("method sequential prunes channels layer by layer: set prune.structure: channel")
        check_criterion(p.criterion)  # an unknown criterion fails before anything is computed
        if p.scope == "layerwise":
            allocation.ALLOCATIONS.get(p.allocation)
    if p.control != "none" and p.method != "imp":
        raise UserError(f"prune.control applies to method imp (the lottery-ticket controls), not {p.method}")


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
        self.model = task.build_model().to(self.device)
        self.arch = getattr(self.model, "arch", None)
        self.base = self._unpruned()
        self.example = self._example()
        if self.cfg.prune.tau == "auto" and not task.has_split("val"):
            raise UserError("prune.tau auto compares validation metrics: give the run a validation split")
        self.coverage = self._coverage()
        self.names = check_names(self.coverage)
        self.init_state = {k: v.clone() for k, v in self.model.state_dict().items()}
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
            return self.init_state, {} if self.channel else dense_masks(self.model, self.names)
        state, masks, record, _ = self.store.load(self.store.round_path(plan.base))
        self._reshape(record.get("shape"))
        return state, self._ordered(masks)

    def _fresh_model(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the global RNG untouched
            return self.task.build_model().to(self.device)

    def _reshape(self, shape: dict[str, Any] | None) -> None:
        """Channel runs: rebuild the model as thin as `shape` records (None: the base architecture)."""
        if self.channel:
            from prunekit.export.compact import narrow

            model = self._fresh_model()
            if shape:
                narrow(model, shape["modules"], shape["shapes"], "the run checkpoint")
            self.model = model.to(self.device)

    def _ordered(self, masks: Masks) -> Masks:
        """Masks in module order (files store them sorted otherwise); the order breaks ties in global ranking."""
        return {} if self.channel else {n: masks[n] for n in self.names}

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
        what, decide = f"the pruning of round {plan.index}", lambda: self._decide(plan, masks, target)
        if self.channel:
            distributed.agree_on_architecture(self.world, decide, self.model, what)
            return {}
        return distributed.agree_on_masks(self.world, decide, self.model, masks, what)

    def _decide(self, plan: RoundPlan, masks: Masks, target: float | None) -> Masks:
        p = self.cfg.prune
        target = plan.sparsity if target is None else target
        gen = torch.Generator().manual_seed(seed_for(self.cfg.seed, plan.index, 10**6))
        ratios = dict(p.layer_ratio)  # per-layer ratios (layer -> fraction removed), e.g. from a sensitivity scan
        if plan.allocate == "amc":  # learned per-layer ratios: searched once on the trained network, logged
            from prunekit.pruning.amc.runner import search_ratios

            ratios = search_ratios(self, plan)
        if self.channel:
            from prunekit.pruning.structured import needs_batches, original_widths, prune_channels

            report = prune_channels(
                self.model,
                target,
                criterion=p.criterion,
                scope=p.scope,
                ignore=p.ignore or (),
                min_channels=p.min_channels,
                round_to=1 if plan.allocate == "amc" else p.round_to,  # AMC's budget holds for exact widths
                batches=self._score_batches(gen) if needs_batches(p.criterion) else [],
                objective=self.task.objective,
                example_input=None if is_shape(self.example) else self.example,
                generator=gen,
                original=original_widths(self.model, self.base),
                ratios=ratios,
                only=plan.layers,
            )
            if report.whole:  # the sparsity counts only the groups that could lose channels: say which could not
                kept = "; ".join(f"{name} ({why})" for name, why in report.whole.items())
                self.log(f"round {plan.index}: channel groups kept whole: {kept}")
            return {}
        batches = self._score_batches(gen) if wants_data(p.criterion, p.scope, p.allocation) else []
        target, fixed = fixed_by_ratios(ratios, masks, target, plan.fixed)
        ctx = ScoreContext(self.model, masks, batches, gen, objective=self.task.objective, example_input=self.example)
        return prune_to(
            ctx,
            p.criterion,
            target,
            iterations=plan.iterations if plan.iterations is not None else p.iterations,
            scope=p.scope,
            allocation=p.allocation,
            fixed=fixed,
            min_density=p.min_density,
            pattern=p.pattern,
        )

    def _pruned_score(self, masks: Masks) -> float | None:
        """Test metric of the network just pruned, before any rewinding or retraining (the no-retraining point)."""
        apply_masks(self.model, masks)
        value = self.task.evaluate(self.model, "test", self.cfg.train.eval_batch_size)
        return None if value is None else round(value, 6)

    def _key(self, prefix: str = "") -> str:
        """Record key of the task's metric: `{prefix}accuracy`, or `{prefix}metric` for any other metric."""
        return prefix + ("accuracy" if self.task.metric.name == "accuracy" else "metric")

    def _score_batches(self, gen: torch.Generator) -> list[Any]:
        return self.task.score_batches(self.cfg.prune.score_batches, self.cfg.train.batch_size, gen)

    # --- one round ---------------------------------------------------------------------------------------------
    def _run_round(self, plan: RoundPlan) -> None:
        epoch_path = self.store.epoch_path(plan.index)
        if self.store.exists(epoch_path):
            state, masks, progress, opt = self.store.load(epoch_path)
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
            progress = {"epochs_done": 0, "seconds": 0.0, "history": [], "shape": self._shape(), "pruned": pruned}
            progress["prune_seconds"] = prune_seconds  # pruning time, reported beside the training time
            optimizer = make_optimizer(self.model.parameters(), self.cfg.train)  # after surgery: new parameters
        seconds = self._train(plan, masks, optimizer, progress, epoch_path)
        distributed.check_model(self.model, masks, f"the weights of round {plan.index}", self.world)
        record = {
            **self._record(plan, masks, seconds, progress["epochs_done"]),
            "prune_seconds": progress.get("prune_seconds"),
        }
        record[self._key("pruned_")] = progress.get("pruned")
        extra = {"history": progress["history"], "shape": self._shape()}
        self.store.save(self.store.round_path(plan.index), self.model.state_dict(), masks, {**record, **extra})
        self.store.discard(epoch_path)
        self.write_summary()
        self.log(
            f"round {plan.index}/{len(self.plans) - 1}: sparsity {record['sparsity']:.2%}  test "
            f"{self.task.metric.name} {self.task.metric.format(self._score(record))}  "
            f"({plural(record['epochs'], 'epoch')}, {record['wall_seconds']:.1f} s)"
        )

    def _shape(self) -> dict[str, Any] | None:
        if not self.channel:
            return None
        from prunekit.pruning.structured.rounds import shape_record

        return shape_record(self.model, self.base)

    def _lr_fn(self, plan: RoundPlan) -> Callable[[float], float]:
        t = self.cfg.train
        if plan.schedule == "finetune":
            lr = finetune_lr(t, self.cfg.prune.finetune_lr)
            return lambda _: lr
        return lambda pos: lr_at(t, plan.start_epoch + pos * plan.squeeze)

    def _train(
        self,
        plan: RoundPlan,
        masks: Masks,
        optimizer: torch.optim.Optimizer,
        progress: dict[str, Any],
        epoch_path: Path | None,
        stream: int = 0,
    ) -> float:
        """Train the masked model through the rest of the round; returns the round's seconds so far."""
        t = self.cfg.train
        apply_masks(self.model, masks)
        handle = MaskEnforcer(self.model, masks).attach(optimizer)
        steps = self.task.steps_per_epoch(t.batch_size)
        hook = None
        if plan.during is not None:
            hook = TRAINING_HOOKS.get(plan.during)(
                HookContext(
                    self.model,
                    masks,
                    optimizer,
                    self.cfg,
                    plan,
                    steps,
                    progress["epochs_done"] * steps,
                    prune_to=lambda target: self._prune(plan, masks, target),
                )
            )
        start = time.perf_counter() - progress["seconds"]
        lr_fn = self._lr_fn(plan)
        what = f"round {plan.index}/{len(self.plans) - 1}" + (" control" if stream else "")
        val_key = "val_accuracy" if self.task.metric.name == "accuracy" else "val_metric"
        recovered = self._recovery_test(plan, val_key) if stream == 0 else None
        for epoch in range(progress["epochs_done"], plan.epochs):
            if recovered is not None and epoch >= plan.min_epochs and recovered(progress["history"][-1][val_key]):
                self.progress.skip(plan.epochs - epoch)
                self.log(f"{what}: validation recovered after {plural(epoch, 'epoch')}; stopping early (tau: auto)")
                break
            began = time.perf_counter()
            loss = self.task.train_epoch(
                self.model,
                optimizer,
                batch_size=t.batch_size,
                lr_at=lr_fn,
                epoch=epoch,
                generator=torch.Generator().manual_seed(seed_for(self.cfg.seed, plan.index, epoch, stream)),
                desc=f"{what} epoch {epoch + 1}",
            )
            val = self.task.evaluate(self.model, "val", t.eval_batch_size)
            progress["epochs_done"] = epoch + 1
            progress["history"].append(
                {
                    "epoch": epoch + 1,
                    "train_loss": round(loss, 6),
                    val_key: val,
                    "lr": lr_fn(epoch + (steps - 1) / steps),
                }
            )
            progress["seconds"] = time.perf_counter() - start
            progress["shape"] = self._shape()  # gradual channel pruning thins the model during the round
            self._maybe_save_rewind(plan, epoch + 1, masks)
            if epoch_path is not None and epoch + 1 < plan.epochs:
                self.store.save(epoch_path, self.model.state_dict(), masks, progress, optimizer.state_dict())
            shown = f"val {self.task.metric.name} {self.task.metric.format(val)}" if val is not None else "no val split"
            self.progress.epoch_done(
                f"{what}, epoch {epoch + 1}/{plan.epochs}",
                time.perf_counter() - began,
                f"loss {loss:.4f}, {shown}",
            )
        handle.remove()
        if hook is not None:
            hook.finish()
        return time.perf_counter() - start

    def _recovery_test(self, plan: RoundPlan, val_key: str) -> Callable[[float | None], bool] | None:
        """For adaptive AIMP: whether a val metric is back within `plan.stop_within` of the base round's."""
        if plan.stop_within is None:
            return None
        reference = self.store.record(plan.base)[val_key] if plan.base is not None else None
        if reference is None or not self.task.has_split("val"):
            raise UserError("prune.tau auto compares validation metrics: give the run a validation split")
        tol, higher = plan.stop_within, self.task.metric.higher_is_better
        return lambda val: val is not None and (val >= reference - tol if higher else val <= reference + tol)

    def _wants_control(self, plan: RoundPlan) -> bool:
        return (
            self.cfg.prune.control != "none"
            and plan.sparsity is not None
            and not self.store.exists(self.store.control_path(plan.index))
        )

    def _run_control(self, plan: RoundPlan) -> None:
        """The lottery-ticket controls for a pruned round: its masks on a random re-initialisation (reinit), or
        random masks with its per-layer sparsities on the weights the round started from (random)."""
        kind = self.cfg.prune.control
        if not self._wants_control(plan):
            return
        masks = self._ordered(self.store.load(self.store.round_path(plan.index))[1])
        base_state, _ = self._base(plan)
        if kind == "reinit":
            torch.manual_seed(seed_for(self.cfg.seed, 7919))
            state = self.task.build_model().state_dict()
        else:
            state = self._start_state(plan, base_state)
            gen = torch.Generator().manual_seed(seed_for(self.cfg.seed, plan.index, 7919))
            scores = {n: torch.rand(m.shape, generator=gen) for n, m in masks.items()}
            full = {n: torch.ones_like(m) for n, m in masks.items()}
            masks = allocation.select_per_layer(scores, full, {n: int(m.sum()) for n, m in masks.items()})
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

    def _maybe_save_rewind(self, plan: RoundPlan, epochs_done: int, masks: Masks) -> None:
        kind, _, arg = self.cfg.prune.rewind.partition(":")
        path = self.store.rewind_path
        if plan.index == 0 and kind == "epoch" and epochs_done == int(arg) and not self.store.exists(path):
            self.store.save(path, self.model.state_dict(), masks, {"epoch": epochs_done})

    def _record(self, plan: RoundPlan, masks: Masks, seconds: float, epochs: int) -> dict[str, Any]:
        batch = self.cfg.train.eval_batch_size
        val = self.task.evaluate(self.model, "val", batch)
        test = self.task.evaluate(self.model, "test", batch)
        if self.channel:
            from prunekit.pruning.structured.rounds import measure

            size = measure(self.model, self.example, self.cfg.prune.ignore or (), self.base)
        else:
            size = {
                "sparsity": round(sparsity(masks), 6),
                "params": remaining_params(self.model, masks),
                "flops": sparse_flops(self.model, masks, self.example),
                "layers": layer_report(masks, layouts(self.model, masks)),
            }
        rounded = {k: None if v is None else round(v, 6) for k, v in (("val", val), ("test", test))}
        accuracy = self.task.metric.name == "accuracy"
        return {
            "round": plan.index,
            "test_accuracy": rounded["test"] if accuracy else None,
            "val_accuracy": rounded["val"] if accuracy else None,
            "epochs": epochs,
            "wall_seconds": round(seconds, 3),
            **size,
            **({} if accuracy else {"test_metric": rounded["test"], "val_metric": rounded["val"]}),
        }

    def _score(self, record: dict[str, Any]) -> float | None:
        return record["test_accuracy"] if self.task.metric.name == "accuracy" else record["test_metric"]

    def write_summary(self) -> dict[str, Any]:
        indices = [plan.index for plan in self.plans]
        extra = {
            "metric": self.task.metric.as_dict(),
            "model": self.task.model_name,
            "dataset": self.task.dataset_name,
            "coverage": coverage_record(self.coverage),
            "processes": self.world.size,
        }
        summary = self.store.write_summary(self.cfg, self.arch, str(self.device), indices, extra)
        self.trackers.rounds(summary)
        return summary


def _quiet(_: str) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""


def run(
    cfg: Config, out: str | Path, log: Callable[[str], None] = print, *, task: Task | None = None
) -> dict[str, Any]:
    return Run(cfg, out, log, task=task).execute()
