"""The training of one round: masked epochs through the Task, an epoch checkpoint after each, early stop for
adaptive AIMP (prune.tau auto), the rewind point of late rewinding, and the round's training-time hook."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.wording import plural
from prunekit.config import Config
from prunekit.pruning.masks import MaskEnforcer, Masks, apply_masks
from prunekit.pruning.methods import RoundPlan
from prunekit.pruning.methods.hooks import TRAINING_HOOKS, HookContext
from prunekit.runner.checks import seed_for
from prunekit.store.directory import Store
from prunekit.tasks import Task
from prunekit.train.optim import finetune_lr, lr_at

if TYPE_CHECKING:
    from prunekit.runner.state import RunState


def train_round(
    run: RunState,
    plan: RoundPlan,
    masks: Masks,
    optimizer: torch.optim.Optimizer,
    progress: dict[str, Any],
    epoch_path: Path | None,
    stream: int,
    prune_to: Callable[[float], Masks],
) -> float:
    """Train the masked model through the rest of the round; returns the round's seconds so far.

    Takes the Run explicitly: it trains `run.model` on `run.task` with `run.cfg`, writes epoch checkpoints through
    `run.store`, reports to `run.progress` and `run.log`, and records `run.shape()` after each epoch. `progress`
    (epochs done, seconds, history, shape) is updated in place; `prune_to(target)` is how a training hook prunes.
    stream 0 is the round itself, 1 its lottery-ticket control (seeded apart, never stopped early).
    """
    t = run.cfg.train
    apply_masks(run.model, masks)
    handle = MaskEnforcer(run.model, masks).attach(optimizer)
    steps = run.task.steps_per_epoch(t.batch_size)
    hook = None
    if plan.during is not None:
        hook = TRAINING_HOOKS.get(plan.during)(
            HookContext(
                run.model,
                masks,
                optimizer,
                run.cfg,
                plan,
                steps,
                progress["epochs_done"] * steps,
                prune_to=prune_to,
            )
        )
    start = time.perf_counter() - progress["seconds"]
    lr_fn = schedule(run.cfg, plan)
    what = f"round {plan.index}/{len(run.plans) - 1}" + (" control" if stream else "")
    val_key = "val_accuracy" if run.task.metric.name == "accuracy" else "val_metric"
    recovered = recovery_test(run.store, run.task, plan, val_key) if stream == 0 else None
    for epoch in range(progress["epochs_done"], plan.epochs):
        if recovered is not None and epoch >= plan.min_epochs and recovered(progress["history"][-1][val_key]):
            run.progress.skip(plan.epochs - epoch)
            run.log(f"{what}: validation recovered after {plural(epoch, 'epoch')}; stopping early (tau: auto)")
            break
        began = time.perf_counter()
        loss = run.task.train_epoch(
            run.model,
            optimizer,
            batch_size=t.batch_size,
            lr_at=lr_fn,
            epoch=epoch,
            generator=torch.Generator().manual_seed(seed_for(run.cfg.seed, plan.index, epoch, stream)),
            desc=f"{what} epoch {epoch + 1}",
        )
        val = run.task.evaluate(run.model, "val", t.eval_batch_size)
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
        progress["shape"] = run.shape()  # gradual channel pruning thins the model during the round
        save_rewind_point(run.cfg, run.store, plan, epoch + 1, run.model, masks)
        if epoch_path is not None and epoch + 1 < plan.epochs:
            run.store.save(epoch_path, run.model.state_dict(), masks, progress, optimizer.state_dict())
        shown = f"val {run.task.metric.name} {run.task.metric.format(val)}" if val is not None else "no val split"
        run.progress.epoch_done(
            f"{what}, epoch {epoch + 1}/{plan.epochs}",
            time.perf_counter() - began,
            f"loss {loss:.4f}, {shown}",
        )
    handle.remove()
    if hook is not None:
        hook.finish()
        if hasattr(hook, "record"):
            progress["learned"] = hook.record()  # what the hook learned, for the round's record
    return time.perf_counter() - start


def schedule(cfg: Config, plan: RoundPlan) -> Callable[[float], float]:
    """The round's lr at a position in epochs: fine-tuning's constant lr, or the train schedule from the plan's
    start epoch (squeezed by `plan.squeeze`)."""
    t = cfg.train
    if plan.schedule == "finetune":
        lr = finetune_lr(t, cfg.prune.finetune_lr)
        return lambda _: lr
    return lambda pos: lr_at(t, plan.start_epoch + pos * plan.squeeze)


def recovery_test(store: Store, task: Task, plan: RoundPlan, val_key: str) -> Callable[[float | None], bool] | None:
    """For adaptive AIMP: whether a val metric is back within `plan.stop_within` of the base round's."""
    if plan.stop_within is None:
        return None
    reference = store.record(plan.base)[val_key] if plan.base is not None else None
    if reference is None or not task.has_split("val"):
        raise UserError("prune.tau auto compares validation metrics: give the run a validation split")
    tol, higher = plan.stop_within, task.metric.higher_is_better
    return lambda val: val is not None and (val >= reference - tol if higher else val <= reference + tol)


def save_rewind_point(
    cfg: Config, store: Store, plan: RoundPlan, epochs_done: int, model: nn.Module, masks: Masks
) -> None:
    """Late rewinding (prune.rewind epoch:K): keep round 0's weights after epoch K, once."""
    kind, _, arg = cfg.prune.rewind.partition(":")
    path = store.rewind_path
    if plan.index == 0 and kind == "epoch" and epochs_done == int(arg) and not store.exists(path):
        store.save(path, model.state_dict(), masks, {"epoch": epochs_done})
