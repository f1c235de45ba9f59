"""Training hooks: pruning that happens *during* a round's training (gradual pruning, soft thresholds).

A hook factory is registered in TRAINING_HOOKS under the name a RoundPlan gives in `during`. The runner builds it
after the optimizer, with a HookContext; the hook attaches itself to the optimizer's step (post-hook) and the runner
calls `finish()` once training ends. Masks are updated in place (`masks[name].copy_(...)`), which keeps the
runner's MaskEnforcer in step since it holds views of the same tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from prunekit.common.registry import Registry
from prunekit.config import Config
from prunekit.pruning.masks import Masks, apply_masks


@dataclass
class HookContext:
    model: nn.Module
    masks: Masks  # live masks of this round; update in place
    optimizer: torch.optim.Optimizer
    cfg: Config
    plan: Any  # the RoundPlan
    steps_per_epoch: int
    start_step: int  # steps already done in this round (non-zero after a resume)
    prune_to: Callable[[float], Masks]  # new masks at a total target sparsity, by the run's criterion and allocation


class TrainingHook(Protocol):
    """`finish()` ends the hook; a hook that learns something to record (BitPruning's bitlengths) also has
    `record() -> dict` of round-record fields, its "layers" entry mapping tensor names to per-layer fields."""

    def finish(self) -> Any: ...


TRAINING_HOOKS: Registry[Callable[[HookContext], TrainingHook]] = Registry("training hook")


class ExtraParameters:
    """Trainable tensors of a training hook rather than of the model (AutoPrune's gates, BitPruning's bitlengths).

    They are one more param group of the run's optimizer, and each is kept in its own optimizer state under `key`, so
    that epoch checkpoints (which save the optimizer state) save it, and a resumed round gets it back with its
    optimizer moments. Build it before creating the tensors (`saved(i)` is the value a resume brings back, or None),
    then `adopt` them.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, key: str, count: int) -> None:
        self.optimizer, self.key = optimizer, key
        first = sum(len(g["params"]) for g in optimizer.param_groups)
        self.entries = [optimizer.state.pop(first + i, None) for i in range(count)]  # a resume's unmatched entries
        self.params: list[nn.Parameter] = []

    def saved(self, i: int) -> Tensor | None:
        entry = self.entries[i]
        return entry[self.key] if entry and self.key in entry else None

    def adopt(self, params: list[nn.Parameter], start_step: int, what: str, **group: Any) -> None:
        opt, self.params = self.optimizer, params
        opt.add_param_group({"params": params, **group})
        resumed = 0
        for p, entry in zip(params, self.entries, strict=True):
            if entry and self.key in entry:
                opt.state[p] = {
                    k: v.to(p.device) if isinstance(v, Tensor) and k != "step" else v
                    for k, v in entry.items()
                    if k != self.key
                }
                resumed += 1
        if start_step and resumed < len(params):
            warnings.warn(f"{what}: resumed without its saved parameters; they restart", stacklevel=3)
        self.handle = opt.register_step_post_hook(self._keep)

    def _keep(self, optimizer: torch.optim.Optimizer, *_: object) -> None:
        """Put each tensor itself into its optimizer state (after the optimizer created that state), so epoch
        checkpoints save its current value without a copy per step."""
        for p in self.params:
            state = optimizer.state[p]
            if state.get(self.key) is not p:
                state[self.key] = p

    def remove(self) -> None:
        self.handle.remove()


def cubic_sparsity(step: int, s_i: float, s_f: float, begin: int, end: int) -> float:
    """Zhu & Gupta 2017: s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, flat before t0 and after the end."""
    if step <= begin:
        return s_i
    if step >= end:
        return s_f
    return s_f + (s_i - s_f) * (1.0 - (step - begin) / (end - begin)) ** 3


def rebind(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """After channel surgery replaced parameters, train the new ones, with fresh optimizer state."""
    params = list(model.parameters())
    group = optimizer.param_groups[0]["params"]
    if len(params) != len(group) or any(p is not q for p, q in zip(params, group, strict=False)):
        optimizer.param_groups[0]["params"] = params
        optimizer.state.clear()


@TRAINING_HOOKS.register("gradual")
class GradualPruning:
    """Prunes every `frequency` steps to the cubic schedule's sparsity between begin_epoch and end_epoch."""

    def __init__(self, ctx: HookContext) -> None:
        p, g = ctx.cfg.prune, ctx.plan.gradual
        self.ctx, self.step = ctx, ctx.start_step
        self.s_i, self.s_f = g["initial"], g["final"]
        self.begin = round(g["begin"] * ctx.steps_per_epoch)
        self.end = max(round(g["end"] * ctx.steps_per_epoch), self.begin + 1)
        self.frequency = p.frequency
        self.current = -1.0
        self.handle = ctx.optimizer.register_step_post_hook(self._after_step)

    @torch.no_grad()
    def _after_step(self, *_: object) -> None:
        self.step += 1
        if self.step % self.frequency == 0 or self.step == self.end:
            self._prune(cubic_sparsity(self.step, self.s_i, self.s_f, self.begin, self.end))

    def _prune(self, target: float) -> None:
        if target <= self.current + 1e-12:
            return
        new = self.ctx.prune_to(target)
        for name, mask in new.items():
            self.ctx.masks[name].copy_(mask)
        apply_masks(self.ctx.model, self.ctx.masks)
        rebind(self.ctx.optimizer, self.ctx.model)
        self.current = target

    def finish(self) -> None:
        self.handle.remove()
        self._prune(self.s_f)  # a round shorter than the schedule still ends at the final sparsity
