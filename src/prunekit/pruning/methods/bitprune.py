"""A reconstruction of BitPruning (Nikolic et al. 2020, "Learning Bitlengths for Aggressive and Accurate
Quantization") from its abstract: every layer learns how many bits its weights need, while training. What the
reconstruction chose (quantiser, interpolation, regulariser, fixed last epoch) is below.

Each prunable tensor W gets a learnable bitlength n, a real number starting at `prune.bits_init`. The layer uses W
quantised to n bits, interpolated between the two integer bitlengths around n:
    Q(W, n) = (1 - a) q(W, b) + a q(W, b + 1),   b = floor(n), a = n - b
where q(W, b) is symmetric uniform quantisation of the whole tensor to b bits: 2^(b-1) - 1 levels on each side of
0, a step of max|W| / (2^(b-1) - 1) (b = 2 is ternary: -step, 0, +step). Rounding passes the gradient to W
unchanged (straight-through estimator); n gets dL/dn = sum(dL/dQ * (q(W, b + 1) - q(W, b))), i.e. the loss pulls n up
where the coarser grid hurts, while the regulariser lambda * sum_l c_l n_l pulls every n down at a constant rate:
c_l = 1/L (the mean bitlength of a layer, the paper's measure) or, with `prune.bits_weighted`, the layer's share of
the weights (the mean bits per weight: the size of the model). n stays within [bits_min, bits_init]. With Adam
each n moves about one learning rate per step (`prune.bits_lr`, the training lr if null, following its schedule).

Method "bitprune": round 0 trains the dense network; round 1 keeps training it with the hook "bitprune" for
`prune.retrain_epochs` epochs, the last `prune.bits_fixed_epochs` of them (1 by default) with every n rounded up to
an integer and fixed, so that the weights adapt to the grid they end on (an interpolated weight lies on neither
grid, and rounding alone cost about 3 points on LeNet-300-100 at 3 bits, see docs/results/criteria.md); at the end
W becomes q(W, bits), weights quantised to 0 leave the masks (they are 0 in the file), and the round record holds
the bit lengths: "mean_bits" (per layer), "bits_per_weight" (weighted by size) and each layer's "bits". Masks of earlier
pruning are kept (0 quantises to 0), so it composes with sparsity.

Files: a sparse file of the result stores each quantised tensor as b-bit codes and one scale, bit-exact
(prunekit.pruning.lowbit; `prunekit export RUN --format sparse` reads the bits from the round record). What it does
not do (docs/results/criteria.md): activations stay in floating point (the paper learns their bitlengths too); there
are no low-bit kernels, so nothing runs faster. The paper's full text could not be read where this was written (its
abstract could): the quantiser and the interpolation above are this implementation's reading of it, stated here so
that they can be checked.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.config import Config
from prunekit.pruning.lowbit import levels
from prunekit.pruning.masks import Masks, prunable_params
from prunekit.pruning.methods.hooks import TRAINING_HOOKS, ExtraParameters, HookContext
from prunekit.pruning.methods.plan import METHODS, RoundPlan, dense_round, retrain_epochs
from prunekit.pruning.methods.reparam import Reparameterised

STATE_KEY = "bitprune_bits"


@METHODS.register("bitprune")
def bitprune(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    learned = RoundPlan(index=1, base=0, weights="keep", epochs=retrain_epochs(cfg), during="bitprune")
    return [dense_round(cfg), learned]


def quantize(w: Tensor, bits: int, top: Tensor | None = None) -> Tensor:
    """q(W, bits): symmetric uniform quantisation of the whole tensor (2^(bits-1) - 1 levels each side of 0, the grid
    prunekit.pruning.lowbit stores); `top` is max|W| when the caller has it already."""
    top = w.detach().abs().max() if top is None else top
    if top == 0:
        return w.detach().clone()
    step = top / levels(bits)
    return torch.round(w.detach() / step) * step


def learned_weight(w: Tensor, n: Tensor) -> Tensor:
    """Q(W, n), differentiable in W (straight through) and in n (through the interpolation weight)."""
    low = int(torch.floor(n.detach()))
    a = n - low
    top = w.detach().abs().max()  # once for both grids: this runs at every forward
    mixed = (1 - a) * quantize(w, low, top) + a * quantize(w, low + 1, top)
    return mixed + (w - w.detach())  # the value of Q; the gradient reaches w unchanged


class LearnedBitlengths:
    """One learnable bitlength per masked tensor, trained through quantised forwards; see the module docstring.

    Any nn.Module and any training loop: attach to the optimizer before training, call `finish()` after it (returns
    the round-record fields). The bitlengths train at `lr` (default: the optimizer's); a loop that sets every
    group's lr each step (prunekit.train.optim.set_lr, as the runner's does) multiplies it by `lr_scale`. `masks`
    (parameter name -> bool tensor) name the tensors; `finish()` updates them.
    """

    def __init__(
        self,
        model: nn.Module,
        masks: Masks,
        optimizer: torch.optim.Optimizer,
        penalty: float,
        init: int = 8,
        low: int = 2,
        weighted: bool = False,
        lr: float | None = None,
        lr_scale: float = 1.0,
        start_step: int = 0,
        fix_at: int | None = None,
    ) -> None:
        if not (isinstance(low, int) and isinstance(init, int) and 2 <= low <= init <= 16):
            raise UserError(f"bitprune: need 2 <= low <= init <= 16 bits (integers), got low={low!r}, init={init!r}")
        if not penalty >= 0:
            raise UserError(f"bitprune: the penalty must be >= 0, got {penalty!r}")
        self.masks, self.low, self.high = masks, low, init
        self.names = list(masks)
        params = prunable_params(model, self.names)
        self.params = [params[n] for n in self.names]
        sizes = torch.tensor([float(p.numel()) for p in self.params])
        shares = sizes / sizes.sum() if weighted else torch.full_like(sizes, 1.0 / len(sizes))
        self.pulls = [penalty * c for c in shares.tolist()]  # the regulariser's gradient on each bitlength
        self.reparam = Reparameterised(model, self.names, self._weight, "bitprune")
        self.extra = ExtraParameters(optimizer, STATE_KEY, len(self.names))
        self.bits: list[nn.Parameter] = []
        for i, p in enumerate(self.params):
            saved = self.extra.saved(i)
            start = torch.full((1,), float(init)) if saved is None else saved.detach().float().reshape(1).clone()
            self.bits.append(nn.Parameter(start.to(p.device)))
        group = {"weight_decay": 0.0, "lr_scale": lr_scale} | ({} if lr is None else {"lr": lr})
        self.extra.adopt(self.bits, start_step, "bitprune", **group)
        self.handles = [
            optimizer.register_step_pre_hook(self._regularise),
            optimizer.register_step_post_hook(self._after_step),
        ]
        self.step, self.fix_at, self.fixed = start_step, fix_at, False
        if fix_at is not None and start_step >= fix_at:
            self.fix()  # resumed after the bitlengths were fixed (their saved values are the fixed integers)

    def _weight(self, i: int) -> Tensor:
        return learned_weight(self.params[i], self.bits[i][0])

    @torch.no_grad()
    def _regularise(self, *_: object) -> None:
        """Add lambda * c_l, the regulariser's gradient, once per optimizer step."""
        if self.fixed:
            return
        for n, pull in zip(self.bits, self.pulls, strict=True):
            if n.grad is None:
                n.grad = torch.full_like(n, pull)
            else:
                n.grad.add_(pull)

    @torch.no_grad()
    def _after_step(self, *_: object) -> None:
        for n in self.bits:
            n.clamp_(self.low, self.high)
        self.step += 1
        if self.fix_at is not None and self.step >= self.fix_at and not self.fixed:
            self.fix()

    def _rounded(self, n: Tensor) -> int:
        return min(self.high, max(self.low, math.ceil(float(n.detach()) - 1e-6)))

    @torch.no_grad()
    def fix(self) -> dict[str, int]:
        """From now on train at the learned bitlengths rounded up, fixed (quantisation-aware fine-tuning: the
        weights adapt to the grid they will end on); returns them."""
        for n in self.bits:
            n.fill_(self._rounded(n))
            n.requires_grad_(False)
        self.fixed = True
        return {name: int(n) for name, n in zip(self.names, self.bits, strict=True)}

    def current(self) -> dict[str, float]:
        """Each tensor's bitlength now (real numbers)."""
        return {name: float(n.detach()) for name, n in zip(self.names, self.bits, strict=True)}

    @torch.no_grad()
    def finish(self) -> dict[str, Any]:
        """Round every bitlength up, quantise the weights to it, drop weights quantised to 0 from the masks; returns
        the round-record fields ("mean_bits", "bits_per_weight", and "layers": name -> {"bits": b})."""
        for handle in self.handles:
            handle.remove()
        self.extra.remove()
        self.reparam.restore()
        bits = {}
        for name, w, n in zip(self.names, self.params, self.bits, strict=True):
            b = self._rounded(n)
            w.copy_(quantize(w, b))
            mask = self.masks[name]
            mask.copy_(mask & (w != 0).to(mask.device))
            bits[name] = b
        sizes = [p.numel() for p in self.params]
        self.fields = {
            "mean_bits": round(sum(bits.values()) / len(bits), 6),
            "bits_per_weight": round(sum(b * s for b, s in zip(bits.values(), sizes, strict=True)) / sum(sizes), 6),
            "layers": {name: {"bits": b} for name, b in bits.items()},
        }
        return self.fields

    def per_layer(self) -> dict[str, int]:
        """The final bits of every tensor (after `finish()`), as `prunekit.save(..., format="sparse", bits=...)`
        takes them to store the weights as b-bit codes."""
        return {name: entry["bits"] for name, entry in self.fields["layers"].items()}

    def record(self) -> dict[str, Any]:
        """The fields `finish()` returned, for the runner's round record."""
        return self.fields


@TRAINING_HOOKS.register("bitprune")
def from_runner(ctx: HookContext) -> LearnedBitlengths:
    p, t = ctx.cfg.prune, ctx.cfg.train
    scale = 1.0 if p.bits_lr is None else p.bits_lr / t.lr
    fix_at = (ctx.plan.epochs - p.bits_fixed_epochs) * ctx.steps_per_epoch
    return LearnedBitlengths(
        ctx.model,
        ctx.masks,
        ctx.optimizer,
        p.bit_penalty,
        p.bits_init,
        p.bits_min,
        p.bits_weighted,
        lr_scale=scale,
        start_step=ctx.start_step,
        fix_at=fix_at,
    )
