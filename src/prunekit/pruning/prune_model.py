"""`prunekit.prune`: one unstructured prune of any nn.Module, with every option the runner has, and a report.

The data flow is the runner's: coverage (which tensors), then `prune_to` (criterion scores, allocation turns them
into masks, iterated on an exponential schedule when asked), then the masks are applied in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from prunekit.batches import InputsFn, LossFn, make_objective
from prunekit.pruning.coverage import Covered, LeftOut, candidates, covered
from prunekit.pruning.criteria import ScoreContext
from prunekit.pruning.masks import Masks, apply_masks, check_masks, count, dense_masks
from prunekit.pruning.prunable import Coverage, Pruned, PruneReport, check_names, prunable
from prunekit.pruning.step import prune_to


def prune_model(
    model: nn.Module,
    sparsity: float,
    *,
    criterion: str = "magnitude",
    scope: str = "global",
    allocation: str = "uniform",
    min_density: float = 0.0,
    ignore: Iterable[str] | None = None,
    batches: Iterable[Any] | None = None,
    loss_fn: LossFn | None = None,
    inputs_fn: InputsFn | None = None,
    iterations: int | None = None,
    example_inputs: Any = None,
    include_embeddings: bool = False,
    include_output: bool = False,
    masks: Masks | None = None,
    seed: int = 0,
    pattern: str = "unstructured",
    calibration: str = "block",
    owl: tuple[float, float] = (5.0, 0.08),
) -> Pruned:
    """See `prunekit.prune`."""
    objective = make_objective(loss_fn, inputs_fn)
    batches = list(batches or [])
    if example_inputs is None and batches:
        example_inputs = objective.inputs(batches[0])
    coverage = getattr(getattr(masks, "report", None), "coverage", None)
    if coverage is None:
        coverage = prunable(
            model,
            include_embeddings=include_embeddings,
            include_output=include_output,
            ignore=ignore,
            example_inputs=example_inputs,
        )
    if masks is None:
        masks = dense_masks(model, check_names(coverage))
    else:
        masks = dict(masks)
        check_masks(model, masks)
        coverage = _restricted(model, coverage, masks)
    ctx = ScoreContext(
        model,
        masks,
        batches,
        torch.Generator().manual_seed(seed),
        objective=objective,
        example_input=example_inputs,
    )
    masks = prune_to(
        ctx,
        criterion,
        sparsity,
        iterations=iterations,
        scope=scope,
        allocation=allocation,
        min_density=min_density,
        pattern=pattern,
        calibration=calibration,
        owl=owl,
    )
    apply_masks(model, masks)
    kept, total = count(masks)
    settings = {"criterion": criterion, "scope": scope}
    if scope == "layerwise":
        settings["allocation"] = allocation
    if min_density:
        settings["min_density"] = min_density
    if allocation == "owl":
        settings["allocation"] = allocation
    report = PruneReport(coverage, 1.0 - kept / total if total else 0.0, kept, total, settings)
    return Pruned(masks, report)


def _restricted(model: nn.Module, coverage: Coverage, masks: Masks) -> Coverage:
    """The coverage of masks given by the caller: their tensors, whatever the options would have chosen."""
    if set(coverage.names) == set(masks):
        return coverage
    found = {c.name: c for c in candidates(model)}
    params = dict(model.named_parameters())
    tensors = [
        covered(found[n]) if n in found else Covered(n, tuple(params[n].shape), "given", "row", (n.rsplit(".", 1)[0],))
        for n in masks
    ]
    others = [LeftOut(n, "not in the masks given") for n in coverage.names if n not in masks]
    return Coverage(tensors, [x for x in coverage.left_out if x.name not in masks] + others, coverage.output)
