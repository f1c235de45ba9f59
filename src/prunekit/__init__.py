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
__all__ = [
    "create_model",
    "list_models",
    "prune",
    "keep_masked",
    "save",
    "load",
    "run",
    "amc_search",
    "autoprune",
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


def amc_search(model: nn.Module, evaluate: Any, **kwargs: Any) -> Any:
    """AMC's per-layer ratios for any nn.Module (see prunekit.pruning.amc.search.amc_search for the arguments)."""
    from prunekit.pruning.amc import amc_search as search

    return search(model, evaluate, **kwargs)


def autoprune(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    penalty: float = 1e-4,
    init: float = 0.05,
    ignore: list[str] | None = None,
) -> Any:
    """AutoPrune's auxiliary gates on the prunable weights of `model`, trained by `optimizer` in your own loop;
    call `.finish()` after training to zero the pruned weights and get the masks."""
    from prunekit.pruning.masks import dense_masks, prunable_names
    from prunekit.pruning.methods.autoprune import AuxiliaryGates

    return AuxiliaryGates(model, dense_masks(model, prunable_names(model, ignore)), optimizer, penalty, init)


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


def run(config: Any, out: Any, overrides: list[str] = ()) -> dict[str, Any]:
    """Run (or resume) an experiment from a YAML path or a Config; returns summary.json's content."""
    from prunekit import config as config_mod
    from prunekit.experiment import run as execute

    cfg = config if isinstance(config, config_mod.Config) else config_mod.load(config, list(overrides))
    return execute(cfg, out)
