"""Soft Threshold Reparameterization (STR, Kusupati et al. 2020): each layer learns how sparse it is.

Every prunable tensor W_l is used through S(W_l, s_l) = sign(W_l) * relu(|W_l| - sigmoid(s_l)), with one learnable
scalar s_l per tensor trained jointly with the weights; weight decay on s_l pulls the threshold sigmoid(s_l) up
(s_init starts it near 0), the loss pulls it down, and the sparsity that results is measured, not imposed.

Method "str": round 0 is the network at initialisation (0 epochs, evaluated); round 1 trains it from there for
`prune.retrain_epochs` epochs (null = train.epochs) with the training hook "str". The hook wraps the forward of every
module that reads a prunable tensor (Conv, ConvTranspose, Linear, MultiheadAttention, LSTM/GRU/RNN, embeddings;
each module of a shared tensor) so that, within it, the tensor is read as S(W, s); the model's state_dict stays plain
(it holds the latent W) and every epoch checkpoint is an ordinary one. At the end, W is replaced by S(W, s) (pruned
weights exactly 0), the original forwards are restored and the live masks become W != 0.

Resume: the thresholds ride in the optimizer state (an extra entry "str_threshold" beside the optimizer's own, for
the thresholds' parameter group; prunekit.pruning.methods.hooks.ExtraParameters), which epoch checkpoints save; the
hook reads them back, so a resumed round
continues with the same thresholds and optimizer moments. If none are found there (e.g. a checkpoint from another
version), the thresholds restart from s_init and a warning says so.

Settings (read with defaults, so future config keys can override them): prune.s_init (-10 by default: threshold
4.5e-5, i.e. dense at the start) and prune.s_decay, the weight decay on s (null = train.weight_decay, as in the
reference code). With no decay on s nothing pushes the thresholds up and the network stays almost dense.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from prunekit.config import Config
from prunekit.pruning.masks import prunable_params
from prunekit.pruning.methods.at_init import init_round
from prunekit.pruning.methods.hooks import TRAINING_HOOKS, ExtraParameters, HookContext
from prunekit.pruning.methods.plan import METHODS, RoundPlan, retrain_epochs
from prunekit.pruning.methods.reparam import Reparameterised

STATE_KEY = "str_threshold"


@METHODS.register("str")
def soft_threshold(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    return [init_round(), RoundPlan(index=1, base=0, weights="keep", epochs=retrain_epochs(cfg), during="str")]


def sparse_weight(weight: Tensor, s: Tensor) -> Tensor:
    """S(W, s) = sign(W) * relu(|W| - sigmoid(s)): the weight STR's layer actually uses."""
    return torch.sign(weight) * torch.relu(weight.abs() - torch.sigmoid(s))


def str_settings(cfg: Config) -> tuple[float, float]:
    """(s_init, weight decay on s): prune.s_init and prune.s_decay (null = train.weight_decay)."""
    p = cfg.prune
    return p.s_init, (cfg.train.weight_decay if p.s_decay is None else p.s_decay)


@TRAINING_HOOKS.register("str")
class SoftThreshold:
    """Trains one threshold per prunable tensor through reparameterised forwards; see the module docstring."""

    def __init__(self, ctx: HookContext) -> None:
        self.ctx = ctx
        self.names = list(ctx.masks)
        params = prunable_params(ctx.model, self.names)
        self.params = [params[n] for n in self.names]
        s_init, decay = str_settings(ctx.cfg)
        if decay == 0:
            warnings.warn(
                "str: no weight decay on the thresholds (train.weight_decay is 0): expect little sparsity", stacklevel=2
            )
        device = self.params[0].device
        self.s = nn.Parameter(torch.full((len(self.names),), float(s_init), device=device))
        self.reparam = Reparameterised(ctx.model, self.names, lambda i: sparse_weight(self.params[i], self.s[i]), "str")
        self.extra = ExtraParameters(ctx.optimizer, STATE_KEY, 1)
        saved = self.extra.saved(0)
        if saved is not None:
            with torch.no_grad():
                self.s.copy_(saved)
        self.extra.adopt([self.s], ctx.start_step, "str", weight_decay=decay)

    def thresholds(self) -> dict[str, float]:
        return {n: float(torch.sigmoid(s)) for n, s in zip(self.names, self.s.detach(), strict=True)}

    @torch.no_grad()
    def finish(self) -> None:
        self.extra.remove()
        self.reparam.restore()
        for i, (name, param) in enumerate(zip(self.names, self.params, strict=True)):
            param.copy_(sparse_weight(param, self.s[i]))
            mask = self.ctx.masks[name]
            mask.copy_(mask & (param != 0).to(mask.device))
