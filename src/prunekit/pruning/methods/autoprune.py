"""A reconstruction of AutoPrune (Xiao, Wang & Rajasekaran, NeurIPS 2019) from its abstract: pruning by auxiliary
parameters trained beside the weights. What the reconstruction chose (gate, update rule, regulariser) is below.

Every prunable tensor W gets an auxiliary tensor M of its shape; the layer uses T = W * h(M) with the gate
h(m) = 1 if m > 0 else 0, so a weight is pruned while its m is not positive and comes back if m rises again. The
gate has no useful derivative, so the paper gives M its own update rule (a straight-through estimator, leaky-ReLU
shaped: h'(m) is taken as 1 for m > 0 and SLOPE below), with the sign of the weight in place of its value so that
a weight's magnitude does not decide how fast its gate moves:
    dL/dW = dL/dT * h(M)                                   (a pruned weight is frozen, ready to come back)
    dL/dM = dL/dT * sign(W) * h'(M) + lambda * h'(M)       (loss term + the regulariser lambda * sum h(M))
The regulariser pushes every gate down at the same rate; a gate stays open while the loss pushes it up harder,
i.e. while the loss wants its weight larger in magnitude. With Adam (the default optimizer) each gate moves about
one learning rate per step, in the sign of the averaged pressure, so `prune.aux_penalty` (lambda) sets how strong
that pressure must be and `prune.aux_init` (the initial m) how many steps a gate takes to close.

Method "autoprune": round 0 trains the dense network; round 1 keeps training it with the hook "autoprune" for
`prune.retrain_epochs` epochs; at the end W is replaced by W * h(M) (pruned weights exactly 0) and the live masks
become W != 0. Like STR the sparsity is learned, not imposed. Every module that reads a prunable tensor (Conv,
Linear, attention, recurrent layers, ...) reads T during the round (prunekit.pruning.methods.reparam).

Resume: each auxiliary tensor is in the optimizer's state (an entry "autoprune_aux" beside Adam's moments, the same
tensor, so nothing is copied per step), which epoch checkpoints save; the hook reads them back on resume.

The paper's full text could not be read where this was written (its abstract and reviews could): the rule above
is the implementation's reading of it, stated here so that it can be checked.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunekit.config import Config
from prunekit.pruning.masks import Masks, prunable_params
from prunekit.pruning.methods.hooks import TRAINING_HOOKS, ExtraParameters, HookContext
from prunekit.pruning.methods.plan import METHODS, RoundPlan, dense_round, retrain_epochs
from prunekit.pruning.methods.reparam import Reparameterised

STATE_KEY = "autoprune_aux"
SLOPE = 0.1  # the straight-through estimator's slope for closed gates (m <= 0)


@METHODS.register("autoprune")
def autoprune(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    pruned = RoundPlan(index=1, base=0, weights="keep", epochs=retrain_epochs(cfg), during="autoprune")
    return [dense_round(cfg), pruned]


def gate_slope(m: Tensor) -> Tensor:
    """h'(m) as the straight-through estimator takes it: 1 for open gates, SLOPE for closed ones."""
    return torch.where(m > 0, torch.ones_like(m), torch.full_like(m, SLOPE))


class GatedWeight(torch.autograd.Function):
    """T = W * (M > 0), with AutoPrune's gradients for W and M (the loss term; the regulariser is added apart)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, w: Tensor, m: Tensor) -> Tensor:
        ctx.save_for_backward(w, m)
        return w * (m > 0).to(w.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor]:
        w, m = ctx.saved_tensors
        return grad * (m > 0).to(grad.dtype), grad * torch.sign(w) * gate_slope(m)


class AuxiliaryGates:
    """Trains one auxiliary tensor per masked tensor through gated forwards; see the module docstring.

    Any nn.Module and any training loop: attach to the optimizer before training, call `finish()` after it.
    `masks` (parameter name -> bool tensor) name the tensors and are updated in place by `finish()`.
    """

    def __init__(
        self,
        model: nn.Module,
        masks: Masks,
        optimizer: torch.optim.Optimizer,
        penalty: float,
        init: float,
        start_step: int = 0,
    ) -> None:
        self.masks, self.penalty = masks, penalty
        self.names = list(masks)
        params = prunable_params(model, self.names)
        self.params = [params[n] for n in self.names]
        self.reparam = Reparameterised(
            model, self.names, lambda i: GatedWeight.apply(self.params[i], self.aux[i]), "autoprune"
        )
        self.extra = ExtraParameters(optimizer, STATE_KEY, len(self.names))
        self.aux: list[nn.Parameter] = []
        for i, (weight, name) in enumerate(zip(self.params, self.names, strict=True)):
            start = self.extra.saved(i)
            m = torch.full_like(weight, init) if start is None else start.to(weight).clone()
            m.masked_fill_(~masks[name].to(weight.device), -init)  # already-pruned weights stay closed
            self.aux.append(nn.Parameter(m))
        self.extra.adopt(self.aux, start_step, "autoprune", weight_decay=0.0)
        self.handle = optimizer.register_step_pre_hook(self._regularise)

    @torch.no_grad()
    def _regularise(self, *_: object) -> None:
        """Add lambda * h'(M), the regulariser's gradient, once per optimizer step."""
        for m in self.aux:
            reg = self.penalty * gate_slope(m)
            if m.grad is None:
                m.grad = reg
            else:
                m.grad.add_(reg)

    def sparsity(self) -> float:
        closed = sum(int((m <= 0).sum()) for m in self.aux)
        return closed / sum(m.numel() for m in self.aux)

    @torch.no_grad()
    def finish(self) -> Masks:
        """Make the gates final: pruned weights become 0, the masks lose them, the modules' forwards come back."""
        self.handle.remove()
        self.extra.remove()
        self.reparam.restore()
        for name, weight, m in zip(self.names, self.params, self.aux, strict=True):
            weight.mul_((m > 0).to(weight.dtype))
            mask = self.masks[name]
            mask.copy_(mask & (m > 0).to(mask.device))
        return self.masks


@TRAINING_HOOKS.register("autoprune")
def from_runner(ctx: HookContext) -> AuxiliaryGates:
    p = ctx.cfg.prune
    return AuxiliaryGates(ctx.model, ctx.masks, ctx.optimizer, p.aux_penalty, p.aux_init, ctx.start_step)
