"""The experiment config: frozen dataclasses are the single source of truth; YAML and --set fill them.

Every key has a default; unknown keys and values of the wrong type or range are `UserError`s that name the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prunekit.errors import UserError


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise UserError(f"config key {key}: {message}")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "lenet_300_100"  # a registered model: prunekit.models.list_models()


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # mnist | cifar10 | cifar100 | minicifar | synthetic
    root: str | None = None  # directory with the dataset files; null = the bundled copy (mnist only)
    val_size: int = 5000  # training examples held out for validation
    augment: bool | None = None  # random crop + flip; null = the dataset's default (on for CIFAR)
    # synthetic
    shape: tuple[int, ...] = (1, 28, 28)
    classes: int = 10
    train_size: int = 256
    test_size: int = 64
    # minicifar: CIFAR-10 restricted to some classes and a number of training images per class
    subset: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    per_class: int = 500

    def __post_init__(self) -> None:
        _check(self.val_size >= 0, "data.val_size", f"must be >= 0, got {self.val_size}")
        _check(self.train_size > 0 and self.test_size > 0, "data.train_size", "sizes must be positive")
        _check(self.classes >= 2, "data.classes", f"must be >= 2, got {self.classes}")
        _check(len(self.shape) == 3 and min(self.shape) > 0, "data.shape", f"must be [C, H, W], got {self.shape}")
        _check(self.per_class > 0, "data.per_class", f"must be positive, got {self.per_class}")
        _check(
            len(self.subset) >= 2 and all(0 <= c < 10 for c in self.subset), "data.subset", "classes 0-9, two or more"
        )


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 60
    optimizer: str = "adam"  # sgd | adam
    lr: float = 0.0012
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | step | cosine
    milestones: tuple[int, ...] = ()  # epochs at which step multiplies the lr by gamma
    gamma: float = 0.1
    warmup_epochs: int = 0  # linear warmup from 0, counted inside `epochs`
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "train.epochs", f"must be >= 0, got {self.epochs}")
        _check(self.batch_size > 0, "train.batch_size", f"must be positive, got {self.batch_size}")
        _check(self.optimizer in ("sgd", "adam"), "train.optimizer", f"sgd | adam, got {self.optimizer!r}")
        _check(self.lr > 0, "train.lr", f"must be positive, got {self.lr}")
        _check(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        schedules = ("constant", "step", "cosine")
        _check(self.lr_schedule in schedules, "train.lr_schedule", f"{' | '.join(schedules)}, got {self.lr_schedule!r}")
        _check(0 <= self.warmup_epochs <= max(self.epochs, 0), "train.warmup_epochs", "must be in [0, epochs]")
        _check(list(self.milestones) == sorted(self.milestones), "train.milestones", "must be increasing")
        _check(self.eval_batch_size > 0, "train.eval_batch_size", "must be positive")


REWIND = re.compile(r"^(init|lr|finetune|epoch:\d+|iter:\d+)$")


@dataclass(frozen=True)
class PruneConfig:
    method: str = "none"  # none | oneshot | imp | gradual | at_init | str
    structure: str = "unstructured"  # unstructured | channel
    criterion: str = "magnitude"
    scope: str = "global"  # global | layerwise
    allocation: str = "uniform"  # layerwise split: uniform | erk | er | snip
    sparsity: float | tuple[float, ...] = 0.9  # fraction of prunable weights removed; oneshot takes a list
    rate: float = 0.2  # imp: fraction of the remaining weights removed each round
    rounds: int | None = None  # imp: number of rounds; null = until `sparsity` is reached
    rewind: str = "init"  # imp: init | epoch:K | iter:N | lr | finetune
    retrain_epochs: int | None = None  # epochs of retraining after each prune; null = train.epochs
    # rewind lr retraining fewer epochs (t) than the schedule (T): false = the lrs of its last t epochs at their own
    # pace (Renda et al. 2020; t = T replays it all); true = the whole schedule squeezed into t (as AIMP's tau does)
    squeeze: bool = False
    # constant lr of fine-tuning (rewind finetune, oneshot without rewind lr, method sequential). null = what
    # Renda et al. fine-tune at, the final lr of a step schedule: constant -> train.lr; step -> lr * gamma^milestones;
    # cosine (ends at 0) -> lr / 100, the lr a step schedule decayed twice by 10 ends at. A run warns when it is
    # <= 1e-3 x train.lr (nothing trains). prunekit.train.optim.finetune_lr.
    finetune_lr: float | None = None
    dense_epochs: int | None = None  # epochs of round 0 (the dense network); null = train.epochs; fewer squeeze the
    # schedule into them (a shorter dense training, as in the AIMP poster's additional experiments)
    layer_epochs: int = 1  # method sequential: fine-tuning epochs after each layer is pruned (ThiNet; 0 = none)
    tau: int | str | None = None  # AIMP: retraining epochs in every round but the last; auto = until recovered
    tau_tolerance: float = 0.002  # tau auto: stop once val metric is within this of the previous round's (0.2 points)
    tau_min: int = 1  # tau auto: epochs every intermediate round trains at least
    tau_max: int | None = None  # tau auto: epochs at most (the lr schedule squeezed into them); null = retrain epochs
    ignore: tuple[str, ...] | None = None  # parameter names never pruned; null = the model's output layer
    layer_rate: dict[str, float] = field(default_factory=dict)  # per-tensor rate overrides (imp, layerwise)
    control: str = "none"  # lottery-ticket control per pruned round: none | reinit | random (same layer sparsities)
    score_batches: int = 10  # batches fed to data-dependent criteria
    min_density: float = 0.0  # no prunable tensor keeps fewer than this fraction of its weights
    min_channels: int = 1  # channel pruning: no layer keeps fewer output channels
    iterations: int | None = (
        None  # pruning steps on an exponential schedule; null = the criterion's (synflow 100, else 1)
    )
    initial_sparsity: float = 0.0  # gradual: sparsity at begin_epoch
    begin_epoch: float = 0.0  # gradual: epoch (of the pruning round) where the cubic schedule starts
    end_epoch: float | None = None  # gradual: epoch where it reaches `sparsity`; null = 3/4 of the round
    frequency: int = 100  # gradual: optimizer steps between pruning steps
    s_init: float = -10.0  # str: initial threshold parameter s (threshold = sigmoid(s))
    s_decay: float | None = None  # str: weight decay on the thresholds; null = train.weight_decay

    def __post_init__(self) -> None:
        for s in self.sparsities:
            _check(0.0 <= s < 1.0, "prune.sparsity", f"must be in [0, 1), got {s}")
        _check(self.structure in ("unstructured", "channel"), "prune.structure", "unstructured | channel")
        _check(self.scope in ("global", "layerwise"), "prune.scope", f"global | layerwise, got {self.scope!r}")
        _check(0.0 < self.rate < 1.0, "prune.rate", f"must be in (0, 1), got {self.rate}")
        _check(self.rounds is None or self.rounds >= 1, "prune.rounds", "must be >= 1 or null")
        _check(
            bool(REWIND.match(self.rewind)),
            "prune.rewind",
            f"init | epoch:K | iter:N | lr | finetune, got {self.rewind!r}",
        )
        _check(self.retrain_epochs is None or self.retrain_epochs >= 0, "prune.retrain_epochs", "must be >= 0 or null")
        _check(self.finetune_lr is None or self.finetune_lr > 0, "prune.finetune_lr", "must be positive or null")
        _check(self.dense_epochs is None or self.dense_epochs >= 1, "prune.dense_epochs", "must be >= 1 or null")
        _check(self.layer_epochs >= 0, "prune.layer_epochs", "must be >= 0")
        _check(
            self.tau is None or self.tau == "auto" or (isinstance(self.tau, int) and self.tau >= 0),
            "prune.tau",
            f"an integer >= 0, auto or null, got {self.tau!r}",
        )
        _check(self.tau_tolerance >= 0, "prune.tau_tolerance", "must be >= 0")
        _check(self.tau_min >= 1, "prune.tau_min", "must be >= 1")
        _check(self.tau_max is None or self.tau_max >= self.tau_min, "prune.tau_max", "must be >= tau_min or null")
        for name, r in self.layer_rate.items():
            _check(0.0 <= r < 1.0, f"prune.layer_rate.{name}", f"must be in [0, 1), got {r}")
        _check(self.control in ("none", "reinit", "random"), "prune.control", "none | reinit | random")
        _check(self.score_batches >= 1, "prune.score_batches", "must be >= 1")
        _check(0.0 <= self.min_density <= 1.0, "prune.min_density", "must be in [0, 1]")
        _check(self.iterations is None or self.iterations >= 1, "prune.iterations", "must be >= 1 or null")
        _check(self.min_channels >= 1, "prune.min_channels", "must be >= 1")
        _check(0.0 <= self.initial_sparsity < 1.0, "prune.initial_sparsity", "must be in [0, 1)")
        _check(self.begin_epoch >= 0, "prune.begin_epoch", "must be >= 0")
        _check(self.end_epoch is None or self.end_epoch > self.begin_epoch, "prune.end_epoch", "must be > begin_epoch")
        _check(self.frequency >= 1, "prune.frequency", "must be >= 1")

    @property
    def sparsities(self) -> tuple[float, ...]:
        return tuple(self.sparsity) if isinstance(self.sparsity, tuple) else (self.sparsity,)


@dataclass(frozen=True)
class Config:
    name: str = "run"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # CPU threads for PyTorch; null = its default. Fewer on a busy machine: 2 threads
    # fighting other processes for 2 cores can run 10x slower than 1. Part of the config as it changes float sums.
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)

    def __post_init__(self) -> None:
        _check(self.device in ("auto", "cpu", "cuda"), "device", f"auto | cpu | cuda, got {self.device!r}")
        _check(self.threads is None or self.threads >= 1, "threads", f"must be >= 1 or null, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted keys replaced, e.g. replace(**{"prune.sparsity": 0.5})."""
        return from_dict(_merge(self.to_dict(), {k: v for k, v in overrides.items()}))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _merge(base: dict[str, Any], dotted: dict[str, Any]) -> dict[str, Any]:
    out = _plain(base)
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = value
    return out


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(f"config key {key}: expected {_name(hint)}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        _check(isinstance(value, dict), key, f"expected a mapping, got {value!r}")
        return _build(hint, value, key + ".")
    if origin is tuple:
        _check(isinstance(value, list | tuple), key, f"expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _check(isinstance(value, dict), key, f"expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if hint is float:
        _check(isinstance(value, int | float) and not isinstance(value, bool), key, f"expected a number, got {value!r}")
        return float(value)
    if hint is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {value!r}")
        return value
    if hint is bool:
        _check(isinstance(value, bool), key, f"expected true or false, got {value!r}")
        return value
    if hint is str:
        _check(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def _name(hint: Any) -> str:
    return " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(hint)) or str(hint)


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (known: {', '.join(known)})"
            raise UserError(f"unknown config key {prefix}{key}{hint}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def from_dict(values: dict[str, Any]) -> Config:
    _check(isinstance(values, dict), "(top level)", "the config must be a YAML mapping")
    return _build(Config, values)


def parse_override(text: str) -> tuple[str, Any]:
    """`prune.sparsity=0.95` -> ("prune.sparsity", 0.95); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise UserError(f"--set {key}: cannot read value {raw!r}: {e.problem}") from None


def load(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults), apply --set overrides, validate everything."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML: {e}") from None
        _check(isinstance(values, dict), str(path), "the config must be a YAML mapping")
        values.setdefault("name", path.stem)
    return from_dict(_merge(values, dict(parse_override(o) for o in overrides)))


def differences(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v and k != "layer_rate":
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = v
        return out

    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
