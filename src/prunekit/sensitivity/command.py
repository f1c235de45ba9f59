"""`prunekit sensitivity CONFIG_OR_RUN --out DIR`: scan a trained network, write the table, figure and ratios files.

From a run directory the scan uses its round 0 (the trained dense network; runs whose round 0 is untrained, such
as at_init and str, are refused). From a config it first trains the dense network with the runner into DIR/dense
(method none, the config's model, data and training; resumable), then scans that. Accuracy is measured on the
validation split, never the test split. `config_task` is the only glue between a config and the scan.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit import config as config_mod
from prunekit.common.batches import Batch, call_model
from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip
from prunekit.config import Config, PruneConfig
from prunekit.config.ratios_file import write_ratios
from prunekit.pruning.budget import Budget
from prunekit.sensitivity import output
from prunekit.sensitivity.ratios import Allocation, budget_allocation, ratios_for_tolerance, uniform_allocation
from prunekit.sensitivity.scan import RATIOS, scan


def config_task(cfg: Config, examples: int | None, device: torch.device) -> tuple[Callable, list[Batch], Any]:
    """(evaluate, score batches, example input) for a config, through its Task: the validation metric on the first
    `examples` examples (all when None), `prune.score_batches` training batches and one example of model inputs."""
    from prunekit.tasks import build_task

    task = build_task(cfg)
    task.to(device)
    if not task.has_split("val"):
        raise UserError("sensitivity evaluates on the validation split: set data.val_size > 0")
    batches = task.score_batches(cfg.prune.score_batches, cfg.train.batch_size, torch.Generator().manual_seed(cfg.seed))
    bs = cfg.train.eval_batch_size
    return (lambda model: task.evaluate(model, "val", bs, limit=examples)), batches, task.example_input()


def trained_model(
    source: Path, overrides: list[str], out: Path, log: Callable[[str], None]
) -> tuple[Config, nn.Module]:
    """The config and trained dense network of a run directory, or of a config (trained here into out/dense)."""
    from prunekit.inspection import round_model

    if not source.exists():
        raise UserError(f"{source}: no such run directory or config file")
    if source.is_dir():
        if not (source / "config.yaml").is_file():
            raise UserError(f"{source} is not a run directory (no config.yaml); pass a run directory or a config")
        from prunekit.store import run_config
        from prunekit.store import summary as run_summary

        cfg = run_config.load(source, overrides, run_summary.load(source))
        run_dir = source
    else:
        cfg = config_mod.load(source, overrides)
        dense = dataclasses.replace(cfg, prune=PruneConfig(ignore=cfg.prune.ignore))
        run_dir = out / "dense"
        log(f"sensitivity: training the dense network of {source} into {run_dir}")
        from prunekit.runner.experiment import run

        run(dense, run_dir, log=log)
    model, _, record = round_model(run_dir, 0)
    if not record.get("epochs"):
        raise UserError(f"round 0 of {run_dir} is untrained (method {cfg.prune.method}): scan a trained network")
    return cfg, model


def run_command(
    source: Path,
    out: Path,
    overrides: list[str],
    structure: str | None,
    ratios: str | None,
    tolerance: float | None,
    budget: str | None,
    examples: int | None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    cfg, model = trained_model(Path(source), overrides, Path(out), log)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    from prunekit.runner.experiment import pick_device

    device = pick_device(cfg.device)
    model = model.to(device)
    evaluate, batches, example = config_task(cfg, examples, device)
    _check_fits(model, example, Path(source))
    structure = structure or cfg.prune.structure
    sens = scan(
        model,
        evaluate,
        structure=structure,
        ratios=_grid(ratios),
        example_input=example,
        ignore=cfg.prune.ignore,
        criterion=_criterion(cfg, structure),
        batches=batches,
        seed=cfg.seed,
        log=log,
    )
    files = output.write(sens, Path(out))
    spec = _budget(budget)
    about = {"source": str(source), "criterion": sens.criterion, "dense_accuracy": sens.dense_accuracy}
    if spec is None:
        alloc = ratios_for_tolerance(sens, 0.01 if tolerance is None else tolerance)
        files.append(
            write_ratios(Path(out) / "ratios.json", alloc.ratios, structure, tolerance=alloc.tolerance, **about)
        )
    else:
        from prunekit.pruning.resources import cost_model

        costs = cost_model(
            model, structure, spec.kind, example, ignore=tuple(cfg.prune.ignore or ()), names=sens.layers
        )
        if tolerance is not None:
            alloc = ratios_for_tolerance(sens, tolerance)
            path = Path(out) / "ratios_tolerance.json"
            files.append(write_ratios(path, alloc.ratios, structure, tolerance=tolerance, **about))
        for name, alloc in (
            ("ratios.json", budget_allocation(sens, costs, spec.fraction)),
            ("uniform_ratios.json", uniform_allocation(sens, costs, spec.fraction)),
        ):
            files.append(_write_budgeted(Path(out) / name, alloc, structure, spec, costs.unit, about))
    return {"files": [str(f) for f in files], "sensitivity": sens.to_dict()}


def _write_budgeted(path: Path, alloc: Allocation, structure: str, spec: Budget, unit: str, about: dict) -> Path:
    budget = {"kind": spec.kind, "fraction": spec.fraction, "unit": unit, "met": round(alloc.cost_fraction, 6)}
    extra = {"tolerance": alloc.tolerance} if alloc.tolerance is not None and "uniform" not in path.name else {}
    return write_ratios(path, alloc.ratios, structure, budget=budget, kept=alloc.kept, **extra, **about)


def _check_fits(model: nn.Module, example: Any, source: Path) -> None:
    """One forward pass on the config's data: a config.yaml that does not describe the checkpoint's network (another
    run's, or edited) is one line here, not a shape mismatch deep in the scan."""
    try:
        with torch.no_grad():
            call_model(model, example)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        where = source / "config.yaml" if source.is_dir() else source
        raise UserError(
            f"{where} does not fit the network of the run's checkpoints ({type(exc).__name__}: "
            f"{clip(str(exc), 120)}); the file is damaged or from another run"
        ) from None


def _grid(text: str | None) -> tuple[float, ...]:
    if text is None:
        return RATIOS
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--ratios expects comma-separated numbers, got {text!r}") from None


def _budget(text: str | None) -> Budget | None:
    if text is None:
        return None
    kind, sep, value = text.partition("=")
    try:
        return Budget(kind.strip(), float(value)) if sep else Budget.parse(json.loads(text))
    except ValueError:
        raise UserError(f"--budget expects KIND=FRACTION (e.g. flops=0.5), got {text!r}") from None


def _criterion(cfg: Config, structure: str) -> str | None:
    """The config's criterion when it scores this structure; the structure's default otherwise."""
    from prunekit.pruning.criteria import CRITERIA
    from prunekit.pruning.structured import CHANNEL_CRITERIA

    registry = CHANNEL_CRITERIA if structure == "channel" else CRITERIA
    return cfg.prune.criterion if cfg.prune.criterion in registry else None
