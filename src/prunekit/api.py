"""`prunekit.Experiment`: every method of a config on your own model, data, loss and metric, from Python.

    exp = prunekit.Experiment("configs/lth_lenet300.yaml", model=make_net, train=train_loader, val=val_loader,
                              test=test_loader, loss=my_loss, metric="accuracy")
    summary = exp.run("runs/mine")          # the same resumable run directory, files and report as the CLI

`model` is a function that builds the network at its initial weights (the runner seeds torch before calling it,
so rounds that rebuild or re-initialise the network get the same draws), or an nn.Module whose current weights
are the initial ones. `train`/`val`/`test` are DataLoaders or any iterables of batches that can be iterated once
per epoch; batches may be tensors, tuples or dicts. `loss(model, batch) -> scalar tensor` (default: cross-entropy
on (x, y) batches), `inputs(batch) -> model inputs` (default: x of (x, y), a dict as keyword arguments). `metric`
is "accuracy", "perplexity", "loss" or a function `metric(model, batches) -> float` with `higher_is_better`.
The config's model and data sections are not used (its train and prune sections are); the run records the
model factory's and the data's names. A factory defined at the top level of an importable module (not a script's
__main__) is recorded as `module:factory` with the shapes of one input, so `prunekit inspect RUN --import module`
and `prunekit export` rebuild its rounds; other factories and nn.Module objects can be inspected from Python only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import nn

from prunekit import config as config_mod
from prunekit.common import user_code
from prunekit.common.batches import Batch, InputsFn, LossFn, make_objective
from prunekit.common.errors import UserError
from prunekit.tasks.from_config import UserModel, importable
from prunekit.tasks.loader import LoaderTask, describe
from prunekit.tasks.metrics import MetricFn


def _config(config: Any, overrides: Iterable[str]) -> config_mod.Config:
    if isinstance(config, config_mod.Config):
        return config.replace(**dict(config_mod.parse_override(o) for o in overrides)) if overrides else config
    if config is None or isinstance(config, str | Path):
        return config_mod.load(config, list(overrides))
    if isinstance(config, dict):
        cfg = config_mod.from_dict(config)
        return cfg.replace(**dict(config_mod.parse_override(o) for o in overrides)) if overrides else cfg
    raise UserError(f"config must be a YAML path, a mapping or a prunekit Config, got {type(config).__name__}")


def _factory(model: Callable[[], nn.Module] | nn.Module) -> tuple[Callable[[], nn.Module], str]:
    """The factory the task calls, and its name. A module-level function or class (not in __main__) is recorded as
    `module:qualname` with its example inputs, so `prunekit inspect/export --import module` can rebuild the run."""
    if isinstance(model, nn.Module):
        initial = copy.deepcopy(model)
        return (lambda: copy.deepcopy(initial)), describe(type(model))
    if not callable(model):
        raise UserError(f"model must be an nn.Module or a function that builds one, got {type(model).__name__}")
    ref = importable(model)
    if ref:  # the user handed us this factory: its module counts as named (rebuilding the base model needs it)
        user_code.allow([ref.split(":", 1)[0]])
    return (UserModel(ref, {}, model) if ref else model), describe(model)


class Experiment:
    """A config run on a user's model and data (see the module docstring)."""

    def __init__(
        self,
        config: Any = None,
        *,
        model: Callable[[], nn.Module] | nn.Module,
        train: Iterable[Batch],
        val: Iterable[Batch] | None = None,
        test: Iterable[Batch] | None = None,
        loss: LossFn | None = None,
        inputs: InputsFn | None = None,
        metric: str | MetricFn = "accuracy",
        higher_is_better: bool | None = None,
        data_name: str | None = None,
        overrides: Iterable[str] = (),
    ) -> None:
        self.cfg = _config(config, overrides)
        factory, model_name = _factory(model)
        if isinstance(model, nn.Module) and self.cfg.prune.control == "reinit":
            raise UserError("prune.control reinit draws new initial weights: pass model= a function that builds it")
        self.task = task = LoaderTask(
            factory,
            train,
            val,
            test,
            objective=make_objective(loss, inputs),
            metric=metric,
            higher_is_better=higher_is_better,
            model_name=model_name,
            dataset_name=data_name or describe(type(train)),
        )
        if isinstance(factory, UserModel):
            factory.example = task.example_input

    def run(self, out: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Run (or resume) into `out`; returns summary.json's content."""
        from prunekit.runner.experiment import Run

        return Run(self.cfg, out, log, task=self.task).execute()
