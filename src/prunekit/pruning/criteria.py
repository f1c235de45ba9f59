"""Unstructured criteria: each scores every prunable weight (higher = more worth keeping), nothing more.

A criterion is a function `(ctx: ScoreContext) -> dict[name, Tensor]` registered in CRITERIA. Criteria that need
data set `needs_data = True` on the function; the runner then gives them a fixed list of batches, so scores are
deterministic under the seed. Already-pruned weights may get any score: allocation never revives them. Scores may
be of any floating dtype (SynFlow's are float64); allocation ranks them in float64.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from prunekit.common.batches import DEFAULT, Batch, Objective, call_model, to_device
from prunekit.common.errors import UserError
from prunekit.common.registry import Registry
from prunekit.pruning.masks import Masks, apply_masks, prunable_params

Scores = dict[str, Tensor]


@dataclass
class ScoreContext:
    model: nn.Module
    masks: Masks
    batches: list[Batch] = field(default_factory=list)
    generator: torch.Generator | None = None
    iteration: tuple[int, int] = (0, 1)  # (step, steps) when a method prunes iteratively (SynFlow)
    objective: Objective = DEFAULT  # how a batch becomes model inputs and a loss (any batch structure)
    example_input: Any = None  # one input of the model's (for data-free criteria such as SynFlow)

    @property
    def params(self) -> dict[str, nn.Parameter]:
        return prunable_params(self.model, self.masks)


Criterion = Callable[[ScoreContext], Scores]
CRITERIA: Registry[Criterion] = Registry("criterion")


def needs_data(criterion: Criterion) -> bool:
    return getattr(criterion, "needs_data", False)


def _data_dependent(fn: Criterion) -> Criterion:
    fn.needs_data = True  # type: ignore[attr-defined]
    return fn


@CRITERIA.register("magnitude")
def magnitude(ctx: ScoreContext) -> Scores:
    return {n: p.detach().abs() for n, p in ctx.params.items()}


@CRITERIA.register("random")
def random(ctx: ScoreContext) -> Scores:
    return {n: torch.rand(p.shape, generator=ctx.generator).to(p.device) for n, p in ctx.params.items()}


class _ScaledOutput:
    """Divides the model's output by `scale` while active (GraSP's softmax temperature), for any loss function."""

    def __init__(self, model: nn.Module, scale: float) -> None:
        self.model, self.scale, self.handle = model, scale, None

    def __enter__(self) -> None:
        if self.scale != 1.0:
            self.handle = self.model.register_forward_hook(self._hook)

    def _hook(self, _: nn.Module, __: object, out: Any) -> Any:
        if not isinstance(out, Tensor):
            raise UserError("criterion grasp scales the model's logits: the model must return one tensor")
        return out / self.scale

    def __exit__(self, *_: object) -> None:
        if self.handle is not None:
            self.handle.remove()


def _loss(ctx: ScoreContext, batch: Batch, scale: float = 1.0) -> Tensor:
    """The objective's loss on one batch, the model's output divided by `scale` first."""
    with _ScaledOutput(ctx.model, scale):
        return ctx.objective.loss(ctx.model, batch)


def _batch_grads(ctx: ScoreContext, scale: float = 1.0) -> Iterator[tuple[Tensor, ...]]:
    """Gradients of the loss (on the model's output / scale) w.r.t. the prunable weights, one batch at a time, for
    the masked network (no .grad is touched)."""
    params = list(ctx.params.values())
    apply_masks(ctx.model, ctx.masks)
    for batch in ctx.batches:
        with torch.enable_grad():  # criteria may be called from no-grad code (an optimizer step hook)
            grads = torch.autograd.grad(_loss(ctx, batch, scale), params)
        yield grads


def _summed_grads(ctx: ScoreContext, scale: float = 1.0) -> list[Tensor]:
    total = [torch.zeros_like(p) for p in ctx.params.values()]
    for grads in _batch_grads(ctx, scale):
        torch._foreach_add_(total, list(grads))
    return total


class _EvalMode:
    """Scores are taken in eval mode (BatchNorm uses its running statistics, as in the SynFlow reference code's
    prune loop), with every scored weight requiring grad (a frozen layer is scored like any other); the model's
    mode and the flags are restored afterwards. cuDNN's recurrent kernels cannot backpropagate in eval mode, so
    recurrent layers on CUDA are scored with PyTorch's own kernels."""

    def __init__(self, model: nn.Module, params: list[nn.Parameter] | None = None) -> None:
        self.model, self.was_training = model, model.training
        self.params = params or []
        self.flags = [p.requires_grad for p in self.params]
        self.cudnn = contextlib.ExitStack()

    def __enter__(self) -> None:
        self.model.eval()
        for p in self.params:
            p.requires_grad_(True)
        if any(isinstance(m, nn.RNNBase) for m in self.model.modules()):
            self.cudnn.enter_context(torch.backends.cudnn.flags(enabled=False))

    def __exit__(self, *_: object) -> None:
        self.cudnn.close()
        for p, flag in zip(self.params, self.flags, strict=True):
            p.requires_grad_(flag)
        self.model.train(self.was_training)


def _require_batches(ctx: ScoreContext, name: str) -> None:
    if not ctx.batches:
        raise UserError(f"criterion {name} needs batches of training data")


@CRITERIA.register("snip")
@_data_dependent
def snip(ctx: ScoreContext) -> Scores:
    """Lee et al. 2019: connection sensitivity |g * w|, g the gradient of the mean loss over all the batches.

    Normalising by the sum (as the paper does) changes no ranking, so it is left out.
    """
    _require_batches(ctx, "snip")
    with _EvalMode(ctx.model, list(ctx.params.values())):
        grads = _summed_grads(ctx)
    return {n: (g * p.detach()).abs() / len(ctx.batches) for (n, p), g in zip(ctx.params.items(), grads, strict=True)}


@CRITERIA.register("taylor")
@_data_dependent
def taylor(ctx: ScoreContext) -> Scores:
    """First-order Taylor importance of one weight, (g_b * w)^2 averaged over the batches (Molchanov et al. 2019,
    eq. 3 with importance averaged over minibatches): the squared loss change estimated for removing w."""
    _require_batches(ctx, "taylor")
    weights = [p.detach() for p in ctx.params.values()]
    totals = [torch.zeros_like(w) for w in weights]
    with _EvalMode(ctx.model, list(ctx.params.values())):
        for grads in _batch_grads(ctx):
            for acc, g, w in zip(totals, grads, weights, strict=True):
                acc += (g * w) ** 2
    return {n: t / len(ctx.batches) for n, t in zip(ctx.params, totals, strict=True)}


GRASP_TEMPERATURE = 200.0  # softmax temperature of the GraSP reference code (Wang et al. 2020; Tanaka et al. 2020)


@CRITERIA.register("grasp")
@_data_dependent
def grasp(ctx: ScoreContext) -> Scores:
    """Wang et al. 2020, Gradient Signal Preservation: keep score w * (H g), the Hessian-gradient product by
    double backpropagation on the loss of logits / 200.

    The paper scores S = -w * (H g) and removes the weights with the HIGHEST S (their removal reduces gradient flow
    the least, or raises it). Here higher = keep, so the score is -S = w * (H g): its lowest values are pruned,
    which selects exactly the paper's weights. Scores are signed; pruned weights score 0 and are never revived.
    """
    _require_batches(ctx, "grasp")
    params, masks = list(ctx.params.values()), [ctx.masks[n] for n in ctx.params]
    with _EvalMode(ctx.model, params), torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):  # twice differentiable
        g = [gi * m for gi, m in zip(_summed_grads(ctx, GRASP_TEMPERATURE), masks, strict=True)]
        hg = [torch.zeros_like(p) for p in params]
        for batch in ctx.batches:
            grads = torch.autograd.grad(_loss(ctx, batch, GRASP_TEMPERATURE), params, create_graph=True)
            z = sum((gi * si).sum() for gi, si in zip(grads, g, strict=True))
            for acc, h in zip(hg, torch.autograd.grad(z, params), strict=True):
                acc += h
    return {n: p.detach() * h for (n, p), h in zip(ctx.params.items(), hg, strict=True)}


def _ones_like_inputs(example: Any) -> Any:
    """One example of all-ones float64 inputs shaped like `example` (a tensor, or tuples/dicts of them); None when
    an input is not floating point (token ids have no all-ones analogue)."""
    if isinstance(example, Tensor):
        if not example.is_floating_point() or example.dim() < 1:
            return None
        return torch.ones((1, *example.shape[1:]), dtype=torch.float64, device=example.device)
    if isinstance(example, dict):
        ones = {k: _ones_like_inputs(v) for k, v in example.items()}
        return None if any(v is None for v in ones.values()) else ones
    if isinstance(example, tuple | list):
        ones = [_ones_like_inputs(v) for v in example]
        return None if any(v is None for v in ones) else type(example)(ones)
    return None


def _ones_input(ctx: ScoreContext, device: torch.device) -> Any:
    """SynFlow's all-ones input of one example, float64: shaped like the model's input (arch, example or batch).

    A model that reads token ids (it has `example_input`) gets its own example instead: the flow then starts at
    the (absolute) embedding rows of those tokens."""
    if callable(getattr(ctx.model, "example_input", None)):
        return ctx.model.example_input(1).to(device)
    arch = getattr(ctx.model, "arch", None)
    if isinstance(arch, dict) and arch.get("input_shape"):
        return torch.ones((1, *arch["input_shape"]), dtype=torch.float64, device=device)
    example = ctx.example_input
    if example is None and ctx.batches:
        example = ctx.objective.inputs(ctx.batches[0])
    ones = _ones_like_inputs(example)
    if ones is not None:
        return to_device(ones, device)
    raise UserError(
        "criterion synflow needs floating-point model inputs (it feeds all-ones inputs, which token ids have no "
        "analogue of): use another criterion for this model, or pass example_inputs (one batch) of float tensors"
    )


@CRITERIA.register("synflow")
def synflow(ctx: ScoreContext) -> Scores:
    """Tanaka et al. 2020, Synaptic Flow (data-free): |w * dR/dw| with R = sum of the output of the network whose
    parameters and buffers are all replaced by their absolute values, on one all-ones input.

    As in the reference code (ganguli-lab/Synaptic-Flow): every floating-point parameter and buffer is made
    non-negative (biases and BatchNorm included) and the model is in eval mode, so BatchNorm uses its (absolute)
    running statistics and acts as a fixed affine layer. The work is done on a float64 copy of the model, so the
    model itself is never modified and R does not overflow on deep networks: at initialisation (seed 0, 3x32x32)
    R is 1.0e26 for VGG-19, 4.2e69 for ResNet-56 and 1.6e138 for ResNet-110, far past float32's 3.4e38. The scores
    are float64, which allocation ranks without loss. It is iterated 100 times by default (prune.iterations) to avoid
    layer collapse.
    """
    clone = copy.deepcopy(ctx.model).double().eval()
    with torch.no_grad():
        for t in [*clone.parameters(), *clone.buffers()]:
            if t.is_floating_point():
                t.abs_()
        named = dict(clone.named_parameters())
        for n in ctx.params:
            named[n].mul_(ctx.masks[n].to(named[n].device))
    weights = [named[n] for n in ctx.params]
    device = weights[0].device
    with _EvalMode(clone, weights), torch.enable_grad():
        out = _flow(call_model(clone, _ones_input(ctx, device)))
        grads = torch.autograd.grad(out, weights)
    scores = {n: (w.detach() * g).abs() for n, w, g in zip(ctx.params, weights, grads, strict=True)}
    if not all(torch.isfinite(s).all() for s in scores.values()):
        raise UserError("synflow: the flow overflowed float64 on this network; scores are not finite")
    return scores


def _flow(out: Any) -> Tensor:
    """R: the sum of every tensor the network returns (tuples and dicts of outputs summed together)."""
    if isinstance(out, Tensor):
        return out.sum()
    values = out.values() if isinstance(out, dict) else out if isinstance(out, tuple | list) else None
    if values is None:
        raise UserError(f"criterion synflow sums the model's outputs: it returned a {type(out).__name__}")
    return sum(_flow(v) for v in values)


synflow.default_iterations = 100  # type: ignore[attr-defined]  (Tanaka et al. 2020; see step.default_iterations)
