"""prunekit: neural-network pruning that shows on disk and in speed.

    import prunekit
    model = prunekit.create_model("lenet_300_100")
    print(prunekit.prunable(model))                    # what a prune covers (Conv, Linear, attention, RNN, ...)
    masks = prunekit.prune(model, 0.9)                 # any nn.Module: global magnitude, exact sparsity; .report
    masks = prunekit.prune(llm, 0.5, criterion="sparsegpt", batches=calib, pattern="2:4")  # post-training
    prunekit.prune_channels(net, 0.5, example_inputs=x)  # any nn.Module: physically thinner, atomic
    prunekit.compress(llm, 0.25, batches=calib, depth=True)  # HF decoder: fewer heads, MLP units, blocks
    optimizer = torch.optim.Adam(model.parameters())
    keep = prunekit.keep_masked(model, masks, optimizer)  # your own loop: pruned weights stay zero after each step
    prunekit.save(model, "m.safetensors", format="sparse", masks=masks)
    model = prunekit.load("m.safetensors")             # rebuilt from metadata, never unpickled

Imports are deferred so `import prunekit` stays light.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__version__ = "0.1.0"
__all__ = [
    "Experiment",
    "create_model",
    "list_models",
    "prunable",
    "prune",
    "prune_channels",
    "compress",
    "keep_masked",
    "save",
    "load",
    "run",
    "amc_search",
    "autoprune",
    "bitprune",
    "UserError",
]

from prunekit.common.errors import UserError  # noqa: E402
from prunekit.searches import amc_search, autoprune, bitprune  # noqa: E402  (deferred imports inside)


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
    model: nn.Module | str | os.PathLike[str],
    sparsity: float,
    *,
    criterion: str = "magnitude",
    scope: str = "global",
    allocation: str = "uniform",
    min_density: float = 0.0,
    ignore: list[str] | None = None,
    batches: list[Any] | None = None,
    loss_fn: Any = None,
    inputs_fn: Any = None,
    iterations: int | None = None,
    example_inputs: Any = None,
    include_embeddings: bool = False,
    include_output: bool = False,
    masks: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
    pattern: str = "unstructured",
    calibration: str = "block",
    owl: tuple[float, float] = (5.0, 0.08),
    out: str | os.PathLike[str] | None = None,
    activations: str = "auto",
) -> dict[str, Any]:
    """Prune `model` in place to `sparsity` of its covered weights; returns the boolean masks (a dict) whose
    `.report` says what was covered, what was left out and why, and the sparsity over the covered tensors.

    Covered: the weights of Conv, ConvTranspose, Linear, MultiheadAttention and LSTM/GRU/RNN layers (see
    `prunekit.prunable`); embeddings and the output layer only when asked. The output layer is the model's declared
    one, else traced from `example_inputs` (or the first of `batches`), else the last layer in registration order.
    criterion/scope/allocation/min_density/iterations: as prune.* in a config (`iterations` None: the criterion's
    default, SynFlow 100). Pass the masks of an earlier call to prune further (masks only shrink). Data-dependent
    criteria need `batches` of any structure: `(x, y)` pairs with cross-entropy by default, otherwise
    `loss_fn(model, batch) -> loss` and `inputs_fn(batch) -> model inputs`.

    criterion "wanda" or "sparsegpt": post-training pruning from calibration `batches` (the model's inputs are
    `inputs_fn(batch)`), block by block; each covered layer is pruned to `sparsity` (these criteria compare within a
    layer, so `scope` "global" means per layer too) and SparseGPT updates the weights it keeps.
    pattern: "unstructured", or "N:M" such as "2:4" or "4:8" for any criterion (then `sparsity` must be 1 - N/M).
    calibration (wanda, sparsegpt): "block" calibrates every layer of a block from one pass of its dense inputs (the
    papers' order), "sequential" layer group after layer group. allocation "owl" (wanda, sparsegpt): each block's
    sparsity from its outlier ratio (Yin et al. 2024), `owl` = (M, lambda), the paper's (5, 0.08) by default.

    A Hugging Face checkpoint directory (safetensors) instead of a model is pruned block by block into the new
    directory `out`, one block in memory at a time, bit for bit as in memory (magnitude needs scope="layerwise");
    `activations` "disk" keeps the calibration hidden states memory-mapped ("auto": when they are large); a rerun
    after a kill resumes. Returns the summary (also out/prune_summary.json) instead of masks.
    """
    if isinstance(model, str | os.PathLike):
        if out is None:
            raise UserError("pruning a checkpoint directory needs out=, the new directory to write")
        if (
            loss_fn is not None
            or masks is not None
            or iterations not in (None, 1)
            or include_embeddings
            or include_output
        ):
            raise UserError(
                "a checkpoint directory takes no loss_fn, masks, iterations, include_embeddings or include_output: "
                "it is pruned once, block by block"
            )
        from prunekit.streaming import prune_checkpoint

        options = {"scope": scope, "allocation": allocation, "min_density": min_density, "ignore": ignore}
        options |= {"batches": batches, "inputs_fn": inputs_fn, "pattern": pattern, "calibration": calibration}
        return prune_checkpoint(model, out, sparsity, criterion=criterion, owl=owl, activations=activations, **options)
    if out is not None:
        raise UserError("out= is for a checkpoint directory: a model is pruned in place")
    from prunekit.pruning.prune_model import prune_model

    return prune_model(
        model,
        sparsity,
        criterion=criterion,
        scope=scope,
        allocation=allocation,
        min_density=min_density,
        ignore=ignore,
        batches=batches,
        loss_fn=loss_fn,
        inputs_fn=inputs_fn,
        iterations=iterations,
        example_inputs=example_inputs,
        include_embeddings=include_embeddings,
        include_output=include_output,
        masks=masks,
        seed=seed,
        pattern=pattern,
        calibration=calibration,
        owl=owl,
    )


def prunable(
    model: nn.Module,
    *,
    include_embeddings: bool = False,
    include_output: bool = False,
    ignore: list[str] | None = None,
    example_inputs: Any = None,
) -> Any:
    """Every tensor `prune` would touch, with the rule that chose it, and what it leaves out, with why (print it)."""
    from prunekit.pruning.prunable import prunable as cover

    return cover(
        model,
        include_embeddings=include_embeddings,
        include_output=include_output,
        ignore=ignore,
        example_inputs=example_inputs,
    )


def prune_channels(
    model: nn.Module,
    fraction: float,
    *,
    example_inputs: Any = None,
    criterion: str = "l1_filter",
    scope: str = "layerwise",
    ignore: list[str] | None = None,
    min_channels: int = 1,
    round_to: int = 8,
    batches: list[Any] | None = None,
    loss_fn: Any = None,
    inputs_fn: Any = None,
    seed: int = 0,
    original: dict[str, int] | None = None,
    verify: bool = True,
    ratios: dict[str, float] | None = None,
) -> Any:
    """Physically remove `fraction` of the prunable channels of any model, in place and atomically; returns a report
    (channels removed per group, groups kept whole and why, parameters before and after).

    example_inputs: what the model is called on to trace it: a tensor (`model(x)`), a tuple (`model(*args)`) or a
    dict of keyword inputs (`model(**kwargs)`); default: the inputs of the first batch, or zeros of a zoo model's
    input shape. Coupled channels go together (residual additions, concatenations, depthwise and grouped
    convolutions), attention loses whole heads, and the output layers (traced from the outputs) keep their width.
    criterion: l1_filter, l2_filter, fpgm, random, bn_scale, taylor, thinet or pcas (the last three need `batches`,
    of any structure: `(x, y)` pairs with cross-entropy by default, otherwise `loss_fn(model, batch)` and
    `inputs_fn(batch)`). ignore: layers (names, globs, parents) whose output channels stay. round_to: groups of at
    least twice as many channels keep a multiple of it (fast kernels; 1 = exact counts). original: the widths
    before the first call (by layer name), so that repeated calls count `fraction` against them.
    verify: check the thinner network computes what the original does with the removed channels zeroed.
    ratios: per-layer fractions removed (a sensitivity scan's or AMC's), by layer name; `fraction` applies to the rest.
    scope: "layerwise" (every coupled group loses `fraction`; the default, as in a config's channel run) or "global"
    (one ranking of normalised scores across groups).
    On any error or refusal the model is exactly as it was. Build the optimizer after pruning.
    """
    import torch

    from prunekit.common.batches import make_objective
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
        round_to=round_to,
        batches=batches,
        objective=objective,
        example_input=example_inputs,
        generator=torch.Generator().manual_seed(seed),
        original=original,
        verify=verify,
        ratios=ratios,
    )


def compress(
    model: nn.Module | str | os.PathLike[str],
    fraction: float | None = None,
    *,
    batches: list[Any] | None = None,
    width: bool = True,
    depth: bool = False,
    hidden: bool | float = False,
    heads: str = "groups",
    importance: str = "activation",
    block_metric: str = "influence",
    depth_share: float = 0.5,
    round_to: int = 8,
    sizes: dict[str, int] | None = None,
    inputs_fn: Any = None,
    out: str | os.PathLike[str] | None = None,
) -> Any:
    """Remove about `fraction` of the parameters of a Hugging Face decoder (Llama, Mistral, Qwen2, GPT-2) in place,
    leaving a smaller dense model of the same class that `save_pretrained` writes as an ordinary checkpoint.

    width: MLP intermediate units and attention heads (heads "groups": whole key/value heads with all the query
    heads sharing them; "within": the same number of query heads from every group; "none": heads stay; GPT-2's
    heads go only with hidden channels). hidden: the hidden size (residual stream) too, the channels with the least
    mean |norm output| (Minitron) removed everywhere (embeddings, norms, projections, output layer); True: it
    shares the budget with width; a float: exactly that fraction of the channels (RMSNorm/LayerNorm statistics then
    run over fewer channels). depth: whole blocks, ranked on the calibration `batches` by `block_metric` "influence"
    (ShortGPT, 1 - cos(h_in, h_out)) or "angular" (Gromov et al.: the run of consecutive blocks whose input and
    output are closest). Both: depth takes `depth_share` of the parameters removed. importance: "activation"
    (Minitron: mean |activation| of a unit, mean norm of a head's output over the calibration tokens) or
    "magnitude" (weight norms). sizes: exact new sizes instead of `fraction`, by config key (num_hidden_layers,
    intermediate_size, num_attention_heads, num_key_value_heads, hidden_size). MLP widths keep a multiple of
    `round_to`.
    Batches are the model's inputs (dicts of input_ids, tensors) or `inputs_fn(batch)` of them.
    Returns a report (`str()` it; `.plan` says which units stayed). A refusal is one line and changes nothing.

    A Hugging Face checkpoint directory (safetensors) instead of a model is compressed into the new directory `out`,
    one block in memory at a time, to the same units and the same bytes as in memory; a rerun after a kill resumes.
    Returns the summary (also out/compress_summary.json; its "report" and "plan" are the report's). hidden is not
    streamed yet (refused in one line): compress such a model in memory.
    """
    options = {"width": width, "depth": depth, "heads": heads, "importance": importance, "sizes": sizes}
    options |= {"block_metric": block_metric, "depth_share": depth_share, "round_to": round_to, "inputs_fn": inputs_fn}
    if isinstance(model, str | os.PathLike):
        if out is None:
            raise UserError("compressing a checkpoint directory needs out=, the new directory to write")
        from prunekit.streaming.compress import NOT_STREAMED, compress_checkpoint

        if hidden:
            raise UserError(NOT_STREAMED)
        return compress_checkpoint(model, out, fraction, batches=batches, **options)
    if out is not None:
        raise UserError("out= is for a checkpoint directory: a model is compressed in place")
    from prunekit.pruning.compress import compress_model

    return compress_model(model, fraction, batches=batches, hidden=hidden, **options)


def keep_masked(model: nn.Module, masks: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> Any:
    """Keep pruned weights at zero through your own training loop; returns a handle with .remove()."""
    from prunekit.pruning.masks import MaskEnforcer

    return MaskEnforcer(model, masks).attach(optimizer)


def save(model: nn.Module, path: Any, **kwargs: Any) -> Any:
    from prunekit.export import save as write

    return write(model, path, **kwargs)


def load(
    path: Any,
    *,
    sparse_inference: bool = False,
    batch_sizes: Any = (1,),
    threads: int | None = None,
    example_inputs: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """A model from a prunekit file; `imports=["package.module"]` lets a file of a user's model (which records
    `package.module:factory`) be rebuilt, `builder=fn(arch)` builds it yourself. Files never import code.
    `semi_structured=True` (CUDA) backs its 2:4 Linear layers by sparse kernels. `sparse_inference=True` (CPU) swaps
    each layer that runs faster sparse, measured at `batch_sizes` with `threads` (see prunekit.sparse_inference);
    the measurements are in `model.sparse_inference_report`, and the model is then for inference only. It measures
    on random inputs of a zoo model's input shape, one per batch size, or on `example_inputs` (a tensor, or a list
    of tensors such as batch 1 and batch 64): a user's model needs them."""
    from prunekit.export import load as read

    model = read(path, **kwargs)
    if sparse_inference:
        from prunekit.sparse_inference import accelerate
        from prunekit.sparse_inference import example_inputs as made_up

        inputs = made_up(model, batch_sizes) if example_inputs is None else example_inputs
        model, report = accelerate(model, inputs, threads=threads, inplace=True)
        model.sparse_inference_report = report
    return model


def __getattr__(name: str) -> Any:
    if name == "Experiment":  # the user-model API, imported on first use (it pulls in torch)
        from prunekit.api import Experiment

        return Experiment
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")


def run(config: Any, out: Any, overrides: list[str] = (), imports: list[str] = ()) -> dict[str, Any]:
    """Run (or resume) an experiment from a YAML path or a Config; returns summary.json's content. `imports`: the
    modules of the `package.module:factory` models and data the config names (as `prunekit run --import`)."""
    from prunekit import config as config_mod
    from prunekit.common import user_code
    from prunekit.runner.experiment import run as execute

    user_code.allow(imports)

    cfg = config if isinstance(config, config_mod.Config) else config_mod.load(config, list(overrides))
    return execute(cfg, out)
