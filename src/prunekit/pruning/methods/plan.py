"""What every method shares: `RoundPlan` (one round of a schedule), the `METHODS` registry a method registers in, and
the helpers its plan is built from (the dense round, retraining epochs, iterations, schedule replay). Methods import
this module; `prunekit.pruning.methods` imports the methods, so the package has no import circle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prunekit.common.registry import Registry
from prunekit.config import Config


@dataclass(frozen=True)
class RoundPlan:
    index: int
    base: int | None  # round whose final weights and masks this round starts from; None = the initial weights
    sparsity: float | None = None  # target after this round's pruning; None = no pruning
    fixed: dict[str, float] = field(default_factory=dict)  # densities imposed on some tensors (per-layer rates)
    weights: str = "keep"  # after pruning: keep | init (theta_0) | rewind (saved rewind point) | reinit
    epochs: int = 0  # training epochs in this round
    schedule: str = "train"  # train = the training lr schedule | finetune = constant fine-tuning lr
    start_epoch: int = 0  # position in the training schedule where this round starts
    squeeze: float = 1.0  # schedule positions advance this many epochs per epoch (AIMP's short retraining)
    iterations: int | None = None  # pruning steps to reach `sparsity` (exponential schedule); None = prune.iterations
    during: str | None = None  # a TRAINING_HOOKS entry that prunes while this round trains
    gradual: dict[str, float] | None = None  # for during="gradual": initial, final, begin, end (epochs)
    stop_within: float | None = None  # end training once the val metric is within this of the base round's
    min_epochs: int = 0  # with stop_within: epochs trained before the first check
    allocate: str | None = None  # "amc": per-layer ratios searched at prune time, on the network the round starts from
    layers: tuple[str, ...] | None = None  # channel runs: the only groups this round prunes (None = all of them)
    distill: dict[str, float] | None = None  # train by distillation from the base round (temperature, lm_weight)


Method = Callable[[Config, dict[str, int]], list[RoundPlan]]
METHODS: Registry[Method] = Registry("method")


def dense_round(cfg: Config) -> RoundPlan:
    """Round 0 trains the dense network over the training schedule, squeezed into prune.dense_epochs if set."""
    epochs = cfg.train.epochs if cfg.prune.dense_epochs is None else cfg.prune.dense_epochs
    squeeze = cfg.train.epochs / epochs if epochs != cfg.train.epochs else 1.0
    return RoundPlan(index=0, base=None, weights="init", epochs=epochs, squeeze=squeeze)


@METHODS.register("none")
def no_pruning(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    return [dense_round(cfg)]


def retrain_epochs(cfg: Config) -> int:
    return cfg.train.epochs if cfg.prune.retrain_epochs is None else cfg.prune.retrain_epochs


def iterations(cfg: Config) -> int:
    """prune.iterations, or the criterion's own default (SynFlow 100, every other criterion 1)."""
    if cfg.prune.iterations is not None:
        return cfg.prune.iterations
    if cfg.prune.structure != "unstructured":
        return 1
    from prunekit.pruning.step import default_iterations

    return default_iterations(cfg.prune.criterion)


def replay(cfg: Config, epochs: int) -> tuple[int, float]:
    """(start_epoch, squeeze) of a retraining of `epochs` epochs that replays the training schedule (rewind lr):
    its last `epochs` epochs at their own pace, or all of it squeezed into them with prune.squeeze (see
    prunekit.train.optim.replay_window)."""
    from prunekit.train.optim import replay_window

    return replay_window(cfg.train.epochs, epochs, cfg.prune.squeeze)
