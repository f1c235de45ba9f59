"""prunekit: neural-network pruning that shows on disk and in speed.

    import prunekit
    model = prunekit.create_model("lenet_300_100")
    masks = prunekit.prune(model, 0.9)                 # any nn.Module: global magnitude, exact sparsity
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
__all__ = ["create_model", "list_models", "prune", "keep_masked", "save", "load", "run", "UserError"]

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


def keep_masked(model: nn.Module, masks: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> Any:
    """Keep pruned weights at zero through your own training loop; returns a handle with .remove()."""
    from prunekit.pruning.masks import MaskEnforcer

    return MaskEnforcer(model, masks).attach(optimizer)


def save(model: nn.Module, path: Any, **kwargs: Any) -> Any:
    from prunekit.export import save as write

    return write(model, path, **kwargs)


def load(
    path: Any, *, sparse_inference: bool = False, batch_sizes: Any = (1,), threads: int | None = None, **kwargs: Any
) -> nn.Module:
    """The model in a prunekit file (dense, sparse or compact). `sparse_inference=True` then swaps each layer that
    runs faster sparse on this CPU, measured at `batch_sizes` with `threads` (see prunekit.sparse_inference); the
    measurements are in `model.sparse_inference_report`, and the model is then for inference only."""
    from prunekit.export import load as read

    model = read(path, **kwargs)
    if sparse_inference:
        from prunekit.sparse_inference import accelerate, example_inputs

        model, report = accelerate(model, example_inputs(model, batch_sizes), threads=threads, inplace=True)
        model.sparse_inference_report = report
    return model


def run(config: Any, out: Any, overrides: list[str] = ()) -> dict[str, Any]:
    """Run (or resume) an experiment from a YAML path or a Config; returns summary.json's content."""
    from prunekit import config as config_mod
    from prunekit.experiment import run as execute

    cfg = config if isinstance(config, config_mod.Config) else config_mod.load(config, list(overrides))
    return execute(cfg, out)
