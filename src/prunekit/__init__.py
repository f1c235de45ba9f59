"""prunekit: neural-network pruning that shows on disk and in speed.

    import prunekit
    model = prunekit.create_model("lenet_300_100")
    masks = prunekit.prune(model, 0.9)                 # any nn.Module: global magnitude, exact sparsity
    prunekit.prune_channels(net, 0.5, example_inputs=x)  # any nn.Module: physically thinner, atomic
    keep = prunekit.keep_masked(model, masks, opt)     # your own loop: pruned weights stay zero after each step
    prunekit.save(model, "m.safetensors", format="sparse", masks=masks)
    model = prunekit.load("m.safetensors")             # rebuilt from metadata, never unpickled

Imports are deferred so `import prunekit` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__version__ = "0.1.0"
__all__ = [
    "Experiment",
    "create_model",
    "list_models",
    "prune",
    "prune_channels",
    "keep_masked",
    "save",
    "load",
    "run",
    "UserError",
]

from prunekit.errors import UserError  # noqa: E402


def create_model(name: str, num_classes: int = 10, input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
    from prunekit.models import create_model as build

    return build(name, num_classes, input_shape)


def list_models(pattern: str = "*") -> list[str]:
    from prunekit.models import list_models as names

    return names(pattern)


def prune(
    model: nn.Module,
    sparsity: float,
    *,
    criterion: str = "magnitude",
    scope: str = "global",
    allocation: str = "uniform",
    ignore: list[str] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    batches: list[Any] | None = None,
    loss_fn: Any = None,
    inputs_fn: Any = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Prune `model` in place to `sparsity` of its prunable weights; returns the boolean masks.

    Pass the masks of an earlier call to prune further (masks only shrink); data-dependent criteria need `batches`,
    of any structure: `(x, y)` pairs with cross-entropy by default, otherwise `loss_fn(model, batch) -> loss` and
    `inputs_fn(batch) -> model inputs`.
    """
    import torch

    from prunekit.batches import make_objective
    from prunekit.pruning.criteria import ScoreContext
    from prunekit.pruning.masks import apply_masks, dense_masks, prunable_names
    from prunekit.pruning.step import prune_step

    masks = masks if masks is not None else dense_masks(model, prunable_names(model, ignore))
    ctx = ScoreContext(
        model,
        masks,
        list(batches or []),
        torch.Generator().manual_seed(seed),
        objective=make_objective(loss_fn, inputs_fn),
    )
    masks = prune_step(ctx, criterion, sparsity, scope=scope, allocation=allocation)
    apply_masks(model, masks)
    return masks


def prune_channels(
    model: nn.Module,
    fraction: float,
    *,
    example_inputs: Any = None,
    criterion: str = "l1_filter",
    scope: str = "layerwise",
    ignore: list[str] | None = None,
    min_channels: int = 1,
    batches: list[Any] | None = None,
    loss_fn: Any = None,
    inputs_fn: Any = None,
    seed: int = 0,
    original: dict[str, int] | None = None,
    verify: bool = True,
) -> Any:
    """Physically remove `fraction` of the prunable channels of any model, in place and atomically; returns a report
    (channels removed per group, groups kept whole and why, parameters before and after).

    example_inputs: what the model is called on to trace it: a tensor (`model(x)`), a tuple (`model(*args)`) or a
    dict of keyword inputs (`model(**kwargs)`); default: the inputs of the first batch, or zeros of a zoo model's
    input shape. Coupled channels go together (residual additions, concatenations, depthwise and grouped
    convolutions), attention loses whole heads, and the output layers (traced from the outputs) keep their width.
    criterion: l1_filter, l2_filter, fpgm, random, bn_scale, taylor or thinet (the last two need `batches`, of any
    structure: `(x, y)` pairs with cross-entropy by default, otherwise `loss_fn(model, batch)` and
    `inputs_fn(batch)`). ignore: layers (names, globs, parents) whose output channels stay. original: the widths
    before the first call (by layer name), so that repeated calls count `fraction` against them.
    verify: check the thinner network computes what the original does with the removed channels zeroed.
    On any error or refusal the model is exactly as it was. Build the optimizer after pruning.
    """
    import torch

    from prunekit.batches import make_objective
    from prunekit.pruning.structured import prune_channels as cut

    objective = make_objective(loss_fn, inputs_fn)
    batches = list(batches or [])
    if example_inputs is None and batches:
        example_inputs = objective.inputs(batches[0])
    return cut(
        model,
        fraction,
        criterion=criterion,
        scope=scope,
        ignore=ignore or (),
        min_channels=min_channels,
        batches=batches,
        objective=objective,
        example_input=example_inputs,
        generator=torch.Generator().manual_seed(seed),
        original=original,
        verify=verify,
    )


def keep_masked(model: nn.Module, masks: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> Any:
    """Keep pruned weights at zero through your own training loop; returns a handle with .remove()."""
    from prunekit.pruning.masks import MaskEnforcer

    return MaskEnforcer(model, masks).attach(optimizer)


def save(model: nn.Module, path: Any, **kwargs: Any) -> Any:
    from prunekit.export import save as write

    return write(model, path, **kwargs)


def load(path: Any, **kwargs: Any) -> nn.Module:
    from prunekit.export import load as read

    return read(path, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Experiment":  # the user-model API, imported on first use (it pulls in torch)
        from prunekit.api import Experiment

        return Experiment
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")


def run(config: Any, out: Any, overrides: list[str] = ()) -> dict[str, Any]:
    """Run (or resume) an experiment from a YAML path or a Config; returns summary.json's content."""
    from prunekit import config as config_mod
    from prunekit.experiment import run as execute

    cfg = config if isinstance(config, config_mod.Config) else config_mod.load(config, list(overrides))
    return execute(cfg, out)
