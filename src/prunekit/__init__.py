"""prunekit: neural-network pruning that shows on disk and in speed.

    import prunekit
    model = prunekit.create_model("lenet_300_100")
    masks = prunekit.prune(model, 0.9)                 # any nn.Module: global magnitude, exact sparsity
    masks = prunekit.prune(llm, 0.5, criterion="sparsegpt", batches=calib, pattern="2:4")  # post-training
    optimizer = torch.optim.Adam(model.parameters())
    keep = prunekit.keep_masked(model, masks, optimizer)  # your own loop: pruned weights stay zero after each step
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
__all__ = ["Experiment", "create_model", "list_models", "prune", "keep_masked", "save", "load", "run", "UserError"]

from prunekit.errors import UserError  # noqa: E402


def create_model(
    name: str, num_classes: int = 10, input_shape: tuple[int, ...] = (1, 28, 28), **options: int
) -> nn.Module:
    """A registered model; `options` are a builder's sizes (e.g. gpt's n_layer, n_head, n_embd)."""
    from prunekit.models import create_model as build

    return build(name, num_classes, input_shape, **options)


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
    pattern: str = "unstructured",
) -> dict[str, torch.Tensor]:
    """Prune `model` in place to `sparsity` of its prunable weights; returns the boolean masks.

    Pass the masks of an earlier call to prune further (masks only shrink); data-dependent criteria need `batches`,
    of any structure: `(x, y)` pairs with cross-entropy by default, otherwise `loss_fn(model, batch) -> loss` and
    `inputs_fn(batch) -> model inputs`.

    criterion "wanda" or "sparsegpt": post-training pruning from calibration `batches` (the model's inputs are
    `inputs_fn(batch)`), block by block; each covered layer is pruned to `sparsity` (these criteria compare within a
    layer, so `scope` "global" means per layer too) and SparseGPT updates the weights it keeps.
    pattern: "unstructured", or "N:M" such as "2:4" or "4:8" for any criterion (then `sparsity` must be 1 - N/M).
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
    masks = prune_step(ctx, criterion, sparsity, scope=scope, allocation=allocation, pattern=pattern)
    apply_masks(model, masks)
    return masks


def keep_masked(model: nn.Module, masks: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> Any:
    """Keep pruned weights at zero through your own training loop; returns a handle with .remove()."""
    from prunekit.pruning.masks import MaskEnforcer

    return MaskEnforcer(model, masks).attach(optimizer)


def save(model: nn.Module, path: Any, **kwargs: Any) -> Any:
    from prunekit.export import save as write

    return write(model, path, **kwargs)


def load(path: Any, **kwargs: Any) -> nn.Module:
    """A model from a prunekit file; `semi_structured=True` (CUDA) backs its 2:4 Linear layers by sparse kernels."""
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
