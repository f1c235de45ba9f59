"""Recovery by knowledge distillation: while a round trains, the loss is the KL divergence of the student's
next-token distribution from the teacher's (the network the round started from), at temperature T and scaled by
T^2 (Hinton et al. 2015), optionally plus `lm_weight` times the task's own loss (the LM loss).

The runner swaps the task's objective for the distillation one around a round's epochs (`distilling`), so the
task's training loop, epoch checkpoints, resume, progress and ETA are the ones every run has; evaluation still
scores perplexity against the data. The teacher is rebuilt from the base round's checkpoint, so a resumed round
distils from the same teacher.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.batches import Batch, Objective
from prunekit.pruning.methods import RoundPlan
from prunekit.runner.state import RunState
from prunekit.store import checkpoint


def logits_of(out: Any) -> Tensor:
    return out if isinstance(out, Tensor) else out.logits


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(teacher || student) of the softened next-token distributions, averaged over tokens."""
    t = float(temperature)
    s = F.log_softmax(student.reshape(-1, student.shape[-1]).float() / t, dim=-1)
    p = F.log_softmax(teacher.reshape(-1, teacher.shape[-1]).float() / t, dim=-1)
    return F.kl_div(s, p, log_target=True, reduction="batchmean") * t * t


def distillation_objective(base: Objective, teacher: nn.Module, temperature: float, lm_weight: float) -> Objective:
    """`base` with its loss replaced by the distillation loss from `teacher` (plus lm_weight x base loss)."""
    teacher.eval().requires_grad_(False)

    def loss(model: nn.Module, batch: Batch) -> Tensor:
        with torch.no_grad():
            target = logits_of(base.forward(teacher, batch))
        value = distillation_loss(logits_of(base.forward(model, batch)), target, temperature)
        return value + lm_weight * base.loss(model, batch) if lm_weight else value

    return replace(base, loss=loss)


@contextmanager
def distilling(run: RunState, plan: RoundPlan) -> Iterator[None]:
    """Inside: `run.task.objective` distils from the base round's network, when the plan asks for it."""
    options = getattr(plan, "distill", None)
    if not options or plan.base is None:
        yield
        return
    teacher = run.task.build_model().to(run.device)
    path = run.store.round_path(plan.base)
    checkpoint.load_weights(teacher, run.store.load(path)[0], path)
    base = run.task.objective
    run.task.objective = distillation_objective(base, teacher, options["temperature"], options["lm_weight"])
    try:
        yield
    finally:
        run.task.objective = base
