"""The experiment config: frozen dataclasses are the single source of truth; YAML and --set fill them.

Every key has a default; unknown keys and values of the wrong type or range are `UserError`s that name the key.
Every number is finite and inside a documented range (the MAX_* bounds below), so the loops the runner and the
methods run over a config (rounds, epochs, batches, synthetic examples) are bounded by validated values.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prunekit.errors import UserError
from prunekit.safe_text import clip, finite, load_yaml, parse_yaml, short

# Upper bounds: far beyond any experiment in the literature, small enough that nothing built from a config can
# loop for ever or allocate without limit before it starts.
MAX_EPOCHS = 10_000  # per round (train.epochs, prune.retrain_epochs, prune.tau, gradual epochs)
MAX_ROUNDS = 1_000  # pruning rounds (prune.rounds, or the rounds `rate` needs to reach `sparsity`)
MAX_BATCH = 1_000_000  # train.batch_size, train.eval_batch_size
MAX_EXAMPLES = 10_000_000  # data.train_size, data.test_size, data.val_size
MAX_EXAMPLE_VALUES = 2**20  # values per example, C x H x W (3 x 512 x 512 fits)
MAX_SYNTHETIC_VALUES = 2**28  # synthetic data in all: (train_size + test_size) x C x H x W (1 GiB of float32)
MAX_CLASSES = 100_000
MAX_LIST = 10_000  # entries of any list or mapping in the config (sparsities, milestones, ignore, layer_rate)
MAX_STEPS = 100_000  # prune.iterations, prune.score_batches
MAX_NAME = 100  # characters of a run name
MAX_STRING = 4_096  # characters of any other string (a path at most)
MAX_THREADS = 1_024


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise UserError(f"config key {key}: {message}")


def _bounded(value: float | None, key: str, low: float, high: float, *, low_open: bool = False) -> None:
    """`value` (None allowed) within [low, high] ((low, high] when low_open), with the range in the message."""
    if value is None:
        return
    ok = (low < value if low_open else low <= value) and value <= high
    _check(ok, key, f"must be in {'(' if low_open else '['}{low:g}, {high:g}], got {short(value)}")


def check_name(name: str, key: str = "name") -> None:
    """A run name becomes the directory runs/<name>: one path component, printable, not hidden, not too long."""
    bad = next((c for c in name if not c.isprintable() or c in "/\\"), None)
    _check(0 < len(name) <= MAX_NAME, key, f"must be 1 to {MAX_NAME} characters, got {len(name)}")
    _check(bad is None, key, f"{short(name)} contains {bad!r}: use a plain name (it becomes the directory runs/NAME)")
    _check(not name.startswith("."), key, f"{short(name)} must not start with '.' (it becomes runs/NAME)")


FREE_FORM_NODES, FREE_FORM_DEPTH, FREE_FORM_TEXT = 10_000, 8, 10_000


def check_free_form(value: Any, key: str) -> None:
    """A user mapping (model.args, data.args): JSON-like values only, bounded in size and depth."""
    budget = [FREE_FORM_NODES]

    def walk(node: Any, depth: int, where: str) -> None:
        budget[0] -= 1
        _check(budget[0] >= 0 and depth <= FREE_FORM_DEPTH, key, f"more than {FREE_FORM_NODES} values or too deep")
        if node is None or isinstance(node, bool | int):
            return
        if isinstance(node, float):
            _check(node == node and abs(node) != float("inf"), where, "numbers must be finite")
        elif isinstance(node, str):
            _check(len(node) <= FREE_FORM_TEXT, where, f"strings are at most {FREE_FORM_TEXT} characters")
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                walk(v, depth + 1, f"{where}[{i}]")
        elif isinstance(node, dict):
            for k, v in node.items():
                _check(isinstance(k, str), where, f"mapping keys must be strings, got {k!r}")
                walk(v, depth + 1, f"{where}.{k}")
        else:
            _check(False, where, f"expected a number, string, list or mapping, got {type(node).__name__}")

    _check(isinstance(value, dict), key, f"expected a mapping, got {value!r}")
    walk(value, 0, key)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "lenet_300_100"  # a registered model (prunekit.models.list_models()), or package.module:factory:
    # user code, imported only with --import package.module, called as factory(**args) (docs/user_models.md)
    args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of a package.module:factory

    def __post_init__(self) -> None:
        check_free_form(self.args, "model.args")


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # mnist | cifar10 | cifar100 | minicifar | synthetic | pystdlib | imagefolder | pkg.mod:factory
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
    # pystdlib: byte-level text of the Python standard library's sources
    seq_len: int = 128  # tokens (bytes) per example
    max_bytes: int = 2_000_000  # bytes read for training (validation and test read a twentieth each)
    # user data: package.module:factory called as factory(**args) (docs/user_models.md); imported with --import
    args: dict[str, Any] = field(default_factory=dict)
    # DataLoader path: batches from a torch DataLoader (any map-style or iterable dataset) instead of slices of
    # in-memory tensors (the default for the built-in datasets, and much faster when the data fits in memory);
    # imagefolder and data factories that return datasets always use it
    loader: bool = False
    workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    pin_memory: bool = False  # page-locked batches, for faster copies to a GPU
    # imagefolder: data.root/<class>/*.png|jpg (or root/train/<class>/..., with optional val/ and test/ beside it)
    image_size: int = 32  # shorter side resized to this, then centre-cropped to a square
    grayscale: bool = False  # 1 channel instead of RGB
    mean: tuple[float, ...] = ()  # per-channel normalisation after scaling to [0, 1]; () = 0.5 for every channel
    std: tuple[float, ...] = ()  # () = 0.5 for every channel
    max_files: int = 1_000_000  # refuse a folder with more image files than this
    max_pixels: int = 50_000_000  # refuse an image with more pixels than this before decoding it (decompression bombs)

    def __post_init__(self) -> None:
        check_free_form(self.args, "data.args")
        _bounded(self.workers, "data.workers", 0, 256)
        _bounded(self.image_size, "data.image_size", 1, 4096)
        channels = 1 if self.grayscale else 3
        for key, values in (("data.mean", self.mean), ("data.std", self.std)):
            _check(len(values) in (0, 1, channels), key, f"one value, or one per channel ({channels})")
            for v in values:
                _bounded(v, key, -1e3, 1e3)
        _check(all(v > 0 for v in self.std), "data.std", "must be positive")
        _bounded(self.max_files, "data.max_files", 1, 10**9)
        _bounded(self.max_pixels, "data.max_pixels", 1, 10**10)
        _bounded(self.val_size, "data.val_size", 0, MAX_EXAMPLES)
        _bounded(self.train_size, "data.train_size", 1, MAX_EXAMPLES)
        _bounded(self.test_size, "data.test_size", 1, MAX_EXAMPLES)
        _bounded(self.classes, "data.classes", 2, MAX_CLASSES)
        _check(len(self.shape) == 3, "data.shape", f"must be [C, H, W], got {short(list(self.shape))}")
        for dim in self.shape:
            _bounded(dim, "data.shape", 1, 65_536)
        values = math.prod(self.shape)
        _check(values <= MAX_EXAMPLE_VALUES, "data.shape", f"C x H x W must be at most {MAX_EXAMPLE_VALUES:,}")
        total = (self.train_size + self.test_size) * values
        _check(
            total <= MAX_SYNTHETIC_VALUES,
            "data.train_size",
            f"(train_size + test_size) x C x H x W is {total:,}, more than {MAX_SYNTHETIC_VALUES:,}: fewer examples",
        )
        _bounded(self.per_class, "data.per_class", 1, MAX_EXAMPLES)
        _bounded(self.seq_len, "data.seq_len", 1, 65_536)
        _bounded(self.max_bytes, "data.max_bytes", 1, 2**31)
        _check(
            2 <= len(self.subset) <= 10 and all(0 <= c < 10 for c in self.subset),
            "data.subset",
            "classes 0-9, two or more",
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
        _bounded(self.epochs, "train.epochs", 0, MAX_EPOCHS)
        _bounded(self.batch_size, "train.batch_size", 1, MAX_BATCH)
        _check(self.optimizer in ("sgd", "adam"), "train.optimizer", f"sgd | adam, got {short(self.optimizer)}")
        _bounded(self.lr, "train.lr", 0, 1e3, low_open=True)
        _bounded(self.momentum, "train.momentum", 0, 1)
        _bounded(self.weight_decay, "train.weight_decay", 0, 1e3)
        schedules = ("constant", "step", "cosine")
        _check(
            self.lr_schedule in schedules,
            "train.lr_schedule",
            f"{' | '.join(schedules)}, got {short(self.lr_schedule)}",
        )
        _check(0 <= self.warmup_epochs <= max(self.epochs, 0), "train.warmup_epochs", "must be in [0, epochs]")
        _check(len(self.milestones) <= MAX_LIST, "train.milestones", f"at most {MAX_LIST} entries")
        for m in self.milestones:
            _bounded(m, "train.milestones", 0, MAX_EPOCHS)
        _check(list(self.milestones) == sorted(self.milestones), "train.milestones", "must be increasing")
        _bounded(self.gamma, "train.gamma", 0, 1e3, low_open=True)
        _bounded(self.eval_batch_size, "train.eval_batch_size", 1, MAX_BATCH)


REWIND = re.compile(r"^(init|lr|finetune|epoch:\d+|iter:\d+)$")


@dataclass(frozen=True)
class PruneConfig:
    method: str = "none"  # none | oneshot | imp | gradual | at_init | str | autoprune | amc
    structure: str = "unstructured"  # unstructured | channel
    criterion: str = "magnitude"  # also wanda | sparsegpt: post-training, from calibration batches, layer by layer
    scope: str = "global"  # global | layerwise (wanda and sparsegpt always compare within a layer: each at the target)
    pattern: str = "unstructured"  # unstructured | N:M such as 2:4 or 4:8 (then sparsity must be 1 - N/M)
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
    include_embeddings: bool = False  # also prune Embedding weights (prunekit.prunable lists what is covered)
    include_output: bool | None = None  # also prune the output layer; null = when prune.ignore is a list (as always)
    layer_rate: dict[str, float] = field(default_factory=dict)  # per-tensor rate overrides (imp, layerwise)
    control: str = "none"  # lottery-ticket control per pruned round: none | reinit | random (same layer sparsities)
    score_batches: int = 10  # batches fed to data-dependent criteria
    min_density: float = 0.0  # no prunable tensor keeps fewer than this fraction of its weights
    min_channels: int = 1  # channel pruning: no layer keeps fewer output channels
    round_to: int = 8  # channel pruning: a group of >= 2 * round_to channels keeps a multiple of it; 1 = exact
    iterations: int | None = (
        None  # pruning steps on an exponential schedule; null = the criterion's (synflow 100, else 1)
    )
    initial_sparsity: float = 0.0  # gradual: sparsity at begin_epoch
    begin_epoch: float = 0.0  # gradual: epoch (of the pruning round) where the cubic schedule starts
    end_epoch: float | None = None  # gradual: epoch where it reaches `sparsity`; null = 3/4 of the round
    frequency: int = 100  # gradual: optimizer steps between pruning steps
    s_init: float = -10.0  # str: initial threshold parameter s (threshold = sigmoid(s))
    s_decay: float | None = None  # str: weight decay on the thresholds; null = train.weight_decay
    # per-layer ratios (oneshot, at_init): layer name -> fraction removed (of its channels for channel pruning,
    # its weights for unstructured); layers not named get `sparsity`. `ratios_file` is a JSON file of such ratios
    # (`prunekit sensitivity` writes them); entries of layer_ratio override the file's.
    layer_ratio: dict[str, float] = field(default_factory=dict)
    ratios_file: str | None = None
    # amc (He et al. 2018): a DDPG agent searches per-layer ratios on the trained network (structure: channel, or
    # unstructured = fine-grained), then the best policy is fine-tuned for retrain_epochs
    budget: dict[str, float] = field(default_factory=dict)  # one of flops | params | latency: the fraction KEPT
    episodes: int = 300  # amc: search episodes, warm-up included
    warmup_episodes: int = 100  # amc: first episodes with random actions (filling the replay buffer)
    reward: str = "error"  # amc: error (-error, budget enforced) | error_log_flops (-error*log FLOPs, no budget)
    reward_examples: int | None = 1000  # amc: validation examples the reward is measured on; null = all
    aux_penalty: float = 1e-4  # autoprune: lambda, the regulariser pushing every auxiliary gate down (more = sparser)
    aux_init: float = 0.05  # autoprune: initial auxiliary value (gates close once it falls to 0)

    def __post_init__(self) -> None:
        _check(1 <= len(self.sparsities) <= MAX_LIST, "prune.sparsity", f"a number or a list of 1 to {MAX_LIST}")
        for s in self.sparsities:
            _check(0.0 <= s < 1.0, "prune.sparsity", f"must be in [0, 1), got {short(s)}")
        _check(self.structure in ("unstructured", "channel"), "prune.structure", "unstructured | channel")
        _check(self.scope in ("global", "layerwise"), "prune.scope", f"global | layerwise, got {short(self.scope)}")
        _check(0.0 < self.rate < 1.0, "prune.rate", f"must be in (0, 1), got {short(self.rate)}")
        _bounded(self.rounds, "prune.rounds", 1, MAX_ROUNDS)
        needed = rounds_needed(max(self.sparsities), self.rate)
        _check(
            self.rounds is not None or needed <= MAX_ROUNDS,
            "prune.rate",
            f"{self.rate:g} per round needs {needed:,} rounds to reach sparsity {max(self.sparsities):g}, more than "
            f"{MAX_ROUNDS}: raise prune.rate or set prune.rounds",
        )
        nm = re.match(r"^(\d+):(\d+)$", self.pattern)
        ok = self.pattern == "unstructured" or (nm is not None and 1 <= int(nm[1]) < int(nm[2]) <= 16)
        _check(ok, "prune.pattern", f"unstructured | N:M with 1 <= N < M <= 16 such as 2:4, got {short(self.pattern)}")
        if nm is not None:
            implied = 1.0 - int(nm[1]) / int(nm[2])
            _check(
                all(abs(s - implied) < 1e-9 for s in self.sparsities),
                "prune.sparsity",
                f"pattern {self.pattern} prunes exactly {implied:g}: set prune.sparsity to {implied:g}",
            )
            one_step = self.method in ("oneshot", "at_init") and self.iterations in (None, 1)
            _check(
                one_step and self.structure != "channel",
                "prune.pattern",
                "N:M patterns prune in one step: method oneshot or at_init, 1 iteration",
            )
        _check(
            bool(REWIND.match(self.rewind)),
            "prune.rewind",
            f"init | epoch:K | iter:N | lr | finetune, got {short(self.rewind)}",
        )
        _bounded(self.retrain_epochs, "prune.retrain_epochs", 0, MAX_EPOCHS)
        _bounded(self.finetune_lr, "prune.finetune_lr", 0, 1e3, low_open=True)
        _bounded(self.dense_epochs, "prune.dense_epochs", 1, MAX_EPOCHS)
        _bounded(self.layer_epochs, "prune.layer_epochs", 0, MAX_EPOCHS)
        _check(
            self.tau is None or self.tau == "auto" or (isinstance(self.tau, int) and 0 <= self.tau <= MAX_EPOCHS),
            "prune.tau",
            f"an integer in [0, {MAX_EPOCHS}], auto or null, got {short(self.tau)}",
        )
        _bounded(self.tau_tolerance, "prune.tau_tolerance", 0, 1e6)
        _bounded(self.tau_min, "prune.tau_min", 1, MAX_EPOCHS)
        _bounded(self.tau_max, "prune.tau_max", 1, MAX_EPOCHS)
        _check(self.tau_max is None or self.tau_max >= self.tau_min, "prune.tau_max", "must be >= tau_min or null")
        _check(self.ignore is None or len(self.ignore) <= MAX_LIST, "prune.ignore", f"at most {MAX_LIST} names")
        _check(len(self.layer_rate) <= MAX_LIST, "prune.layer_rate", f"at most {MAX_LIST} entries")
        for name, r in self.layer_rate.items():
            _check(0.0 <= r < 1.0, f"prune.layer_rate.{clip(name, 40)}", f"must be in [0, 1), got {short(r)}")
        _check(self.control in ("none", "reinit", "random"), "prune.control", "none | reinit | random")
        _bounded(self.score_batches, "prune.score_batches", 1, MAX_STEPS)
        _check(0.0 <= self.min_density <= 1.0, "prune.min_density", "must be in [0, 1]")
        _bounded(self.iterations, "prune.iterations", 1, MAX_STEPS)
        _bounded(self.min_channels, "prune.min_channels", 1, MAX_CLASSES)
        _bounded(self.round_to, "prune.round_to", 1, MAX_CLASSES)  # 1 = exact widths
        _check(0.0 <= self.initial_sparsity < 1.0, "prune.initial_sparsity", "must be in [0, 1)")
        _bounded(self.begin_epoch, "prune.begin_epoch", 0, MAX_EPOCHS)
        _bounded(self.end_epoch, "prune.end_epoch", 0, MAX_EPOCHS)
        _check(self.end_epoch is None or self.end_epoch > self.begin_epoch, "prune.end_epoch", "must be > begin_epoch")
        _bounded(self.frequency, "prune.frequency", 1, 10**9)
        _bounded(self.s_init, "prune.s_init", -100, 100)
        _bounded(self.s_decay, "prune.s_decay", 0, 1e3)
        _check(len(self.layer_ratio) <= MAX_LIST, "prune.layer_ratio", f"at most {MAX_LIST} entries")
        for name, r in self.layer_ratio.items():
            _check(0.0 <= r < 1.0, f"prune.layer_ratio.{clip(name, 40)}", f"must be in [0, 1), got {short(r)}")
        _check(
            not (self.layer_ratio or self.ratios_file) or self.method in ("oneshot", "at_init"),
            "prune.layer_ratio",
            f"per-layer ratios apply to methods oneshot and at_init, not {short(self.method)}",
        )
        _check(len(self.budget) <= 1, "prune.budget", f"name one of flops, params, latency; got {short(self.budget)}")
        for kind, v in self.budget.items():
            known = kind in ("flops", "params", "latency")
            _check(known, "prune.budget", f"flops | params | latency, got {short(kind)}")
            _check(0.0 < v <= 1.0, f"prune.budget.{kind}", f"the fraction kept must be in (0, 1], got {short(v)}")
        _bounded(self.episodes, "prune.episodes", 1, MAX_STEPS)
        _check(0 <= self.warmup_episodes <= self.episodes, "prune.warmup_episodes", "must be in [0, episodes]")
        _check(self.reward in ("error", "error_log_flops"), "prune.reward", "error | error_log_flops")
        _bounded(self.reward_examples, "prune.reward_examples", 1, 10**9)
        _bounded(self.aux_penalty, "prune.aux_penalty", 0, 1e6)
        _bounded(self.aux_init, "prune.aux_init", 0, 1e6, low_open=True)
        if self.method == "amc":
            _check(
                bool(self.budget) or self.reward == "error_log_flops",
                "prune.budget",
                "method amc needs a budget, e.g. {flops: 0.5}, unless prune.reward is error_log_flops",
            )

    @property
    def sparsities(self) -> tuple[float, ...]:
        return tuple(self.sparsity) if isinstance(self.sparsity, tuple) else (self.sparsity,)


def rounds_needed(target: float, rate: float) -> int:
    """Rounds of `rate` (each removing that fraction of the remaining weights) to reach sparsity `target`."""
    if target <= 0:
        return 0
    if not 0 < rate < 1 or not target < 1:
        return MAX_ROUNDS + 1
    return math.ceil(math.log(1.0 - target) / math.log(1.0 - rate) - 1e-9)


@dataclass(frozen=True)
class LogConfig:
    """Where else a run is recorded besides its directory. These keys never change results: a run directory accepts
    them changed on a rerun. A logger that fails (or is not installed) is a warning, never a failed run."""

    tensorboard: bool = False  # TensorBoard event files in DIR/tensorboard (a sweep: tensorboard --logdir SWEEP_DIR)
    mlflow: bool = False  # one MLflow run per run directory: the config as params, metrics per round and epoch, files
    mlflow_uri: str | None = None  # tracking URI; null = MLFLOW_TRACKING_URI, else a local file store DIR/../mlruns
    mlflow_experiment: str | None = None  # null = the run's name (a sweep: the sweep's name)


@dataclass(frozen=True)
class Config:
    name: str = "run"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # CPU threads for PyTorch; null = prunekit.threads.choose_threads: the physical cores
    # (at most torch's default), 1 when the load average says the machine is busy, with a warning. 2 threads fighting
    # other processes for 2 cores can run 10x slower than 1. Part of the config as it changes float sums.
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        check_name(self.name)
        _bounded(self.seed, "seed", 0, 2**63 - 1)
        _check(self.device in ("auto", "cpu", "cuda"), "device", f"auto | cpu | cuda, got {short(self.device)}")
        _bounded(self.threads, "threads", 1, MAX_THREADS)

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
        raise UserError(f"config key {key}: expected {_name(hint)}, got {short(value)}")
    if dataclasses.is_dataclass(hint):
        _check(isinstance(value, dict), key, f"expected a mapping, got {short(value)}")
        return _build(hint, value, key + ".")
    if origin is tuple:
        _check(isinstance(value, list | tuple), key, f"expected a list, got {short(value)}")
        _check(len(value) <= MAX_LIST, key, f"at most {MAX_LIST} entries, got {len(value):,}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _check(isinstance(value, dict), key, f"expected a mapping, got {short(value)}")
        _check(len(value) <= MAX_LIST, key, f"at most {MAX_LIST} entries, got {len(value):,}")
        return {str(k): _coerce(v, args[1], f"{key}.{clip(str(k), 40)}") for k, v in value.items()}
    if hint is Any:  # free-form user values, checked by check_free_form
        return value
    if hint is float:
        _check(
            isinstance(value, int | float) and not isinstance(value, bool),
            key,
            f"expected a number, got {short(value)}",
        )
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        _check(finite(number), key, f"must be a finite number, got {short(value)}")
        return number
    if hint is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {short(value)}")
        return value
    if hint is bool:
        _check(isinstance(value, bool), key, f"expected true or false, got {short(value)}")
        return value
    if hint is str:
        _check(isinstance(value, str), key, f"expected a string, got {short(value)}")
        _check(len(value) <= MAX_STRING, key, f"at most {MAX_STRING:,} characters, got {len(value):,}")
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
            close = difflib.get_close_matches(str(key)[:MAX_NAME], known, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (known: {', '.join(known)})"
            raise UserError(f"unknown config key {prefix}{clip(str(key), 40)}{hint}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def from_dict(values: dict[str, Any]) -> Config:
    _check(isinstance(values, dict), "(top level)", "the config must be a YAML mapping")
    return _with_ratios_file(_build(Config, values))


RATIOS_FILE_LIMIT = 1 << 20


def _with_ratios_file(cfg: Config) -> Config:
    """prune.ratios_file read into prune.layer_ratio (its explicit entries win), so the run records what it used."""
    path = cfg.prune.ratios_file
    if path is None:
        return cfg
    from prunekit.pruning.ratios_file import read_ratios

    ratios = {**read_ratios(Path(path), RATIOS_FILE_LIMIT), **cfg.prune.layer_ratio}
    return dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, layer_ratio=ratios))


def parse_override(text: str) -> tuple[str, Any]:
    """`prune.sparsity=0.95` -> ("prune.sparsity", 0.95); the value is read as YAML (same limits as a file)."""
    if "=" not in text:
        raise UserError(f"--set expects KEY=VALUE, got {short(text)}")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or len(parts) > 8 or not all(parts):
        raise UserError(f"--set {clip(key, 40)}: a key is names joined by single dots, e.g. prune.sparsity")
    return key, parse_yaml(raw, f"--set {clip(key, 40)}")


def load(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults), apply --set overrides, validate everything."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        values = load_yaml(path, "config file")
        values = {} if values is None else values
        _check(isinstance(values, dict), str(path), "the config must be a YAML mapping")
        values.setdefault("name", path.stem)
    return from_dict(_merge(values, dict(parse_override(o) for o in overrides)))


def differences(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs (log.* keys excepted: they change no result)."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v and k not in ("layer_rate", "layer_ratio", "budget"):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = v
        return out

    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k) and not k.startswith("log."))


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
