"""The prune section of the config: method, structure, criterion, schedule and every method's knobs (validated)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from prunekit.common.safe_text import clip, short
from prunekit.config.checks import MAX_CLASSES, MAX_EPOCHS, MAX_LIST, MAX_ROUNDS, MAX_STEPS, bounded, check
from prunekit.config.compress import CompressOptions

REWIND = re.compile(r"(init|lr|finetune|epoch:[0-9]{1,9}|iter:[0-9]{1,9})")  # fullmatch: "init\n" is not init
# prune.criterion and prune.scope when the config leaves them out: they follow prune.structure, and prunekit.prune /
# prunekit.prune_channels have the same defaults
STRUCTURE_DEFAULTS = {"unstructured": ("magnitude", "global"), "channel": ("l1_filter", "layerwise")}


@dataclass(frozen=True)
class PruneConfig:
    method: str = "none"  # none | oneshot | imp | gradual | at_init | str | autoprune | bitprune | amc | sequential
    structure: str = "unstructured"  # unstructured | channel | compress (a Hugging Face decoder made smaller)
    # null = the structure's (STRUCTURE_DEFAULTS): magnitude for unstructured, l1_filter for channel; also wanda |
    # sparsegpt: post-training, from calibration batches, layer by layer
    criterion: str | None = None
    # global | layerwise; null = the structure's: global for unstructured, layerwise for channel (every layer loses
    # the same fraction, as prunekit.prune_channels does). wanda and sparsegpt always compare within a layer.
    scope: str | None = None
    pattern: str = "unstructured"  # unstructured | N:M such as 2:4 or 4:8 (then sparsity must be 1 - N/M)
    allocation: str = "uniform"  # layerwise split: uniform | erk | er | snip; owl (wanda, sparsegpt: per block)
    # wanda, sparsegpt: block = every layer of a block calibrated from one pass of the block's dense inputs (the
    # papers' order); sequential = layer group after layer group, each from inputs through the pruned ones before it
    calibration: str = "block"
    owl_m: float = 5.0  # allocation owl (Yin et al. 2024): an outlier is a Wanda score above M times its block's mean
    owl_lambda: float = 0.08  # allocation owl: block sparsities spread over target +- lambda by outlier ratio
    sparsity: float | tuple[float, ...] = 0.9  # fraction of prunable weights (channel runs: channels) removed;
    # oneshot takes a list
    rate: float = 0.2  # imp: fraction of the remaining weights (channel runs: channels) removed each round
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
    # bitprune (Nikolic et al. 2020): each layer learns the bitlength of its weights while training
    bit_penalty: float = 0.01  # bitprune: lambda, the regulariser pulling every bitlength down (more = fewer bits)
    bits_init: int = 8  # bitprune: the bitlength every layer starts at, and the most it may keep
    bits_min: int = 2  # bitprune: the fewest bits a layer may learn (2 = ternary weights)
    bits_weighted: bool = False  # bitprune: penalise bits per weight (the model's size), not the mean per layer
    bits_lr: float | None = None  # bitprune: learning rate of the bitlengths (following the schedule); null = train.lr
    compress: CompressOptions = field(default_factory=CompressOptions)  # structure compress: see config_compress
    bits_fixed_epochs: int = 1  # bitprune: last epochs of the round trained at the learned bits, rounded up and fixed

    def __post_init__(self) -> None:
        criterion, scope = STRUCTURE_DEFAULTS.get(self.structure, STRUCTURE_DEFAULTS["unstructured"])
        if self.criterion is None:  # frozen: the defaults that follow the structure are filled in once, here
            object.__setattr__(self, "criterion", criterion)
        if self.scope is None:
            object.__setattr__(self, "scope", scope)
        check(1 <= len(self.sparsities) <= MAX_LIST, "prune.sparsity", f"a number or a list of 1 to {MAX_LIST}")
        check(
            len(self.sparsities) <= MAX_ROUNDS,
            "prune.sparsity",
            f"a list of {len(self.sparsities):,} sparsities is as many rounds, more than {MAX_ROUNDS:,}",
        )
        for s in self.sparsities:
            check(0.0 <= s < 1.0, "prune.sparsity", f"must be in [0, 1), got {short(s)}")
        check(
            self.structure in ("unstructured", "channel", "compress"),
            "prune.structure",
            "unstructured | channel | compress",
        )
        check(self.scope in ("global", "layerwise"), "prune.scope", f"global | layerwise, got {short(self.scope)}")
        check(self.calibration in ("block", "sequential"), "prune.calibration", "block | sequential")
        bounded(self.owl_m, "prune.owl_m", 0, 1e6, low_open=True)
        bounded(self.owl_lambda, "prune.owl_lambda", 0, 0.5)
        check(0.0 < self.rate < 1.0, "prune.rate", f"must be in (0, 1), got {short(self.rate)}")
        bounded(self.rounds, "prune.rounds", 1, MAX_ROUNDS)
        needed = rounds_needed(max(self.sparsities), self.rate)
        check(
            self.rounds is not None or needed <= MAX_ROUNDS,
            "prune.rate",
            f"{self.rate:g} per round needs more than {MAX_ROUNDS} rounds to reach sparsity {max(self.sparsities):g}: "
            "raise prune.rate or set prune.rounds",
        )
        nm = re.fullmatch(r"([0-9]{1,3}):([0-9]{1,3})", self.pattern)
        ok = self.pattern == "unstructured" or (nm is not None and 1 <= int(nm[1]) < int(nm[2]) <= 16)
        check(ok, "prune.pattern", f"unstructured | N:M with 1 <= N < M <= 16 such as 2:4, got {short(self.pattern)}")
        if nm is not None:
            implied = 1.0 - int(nm[1]) / int(nm[2])
            check(
                all(abs(s - implied) < 1e-9 for s in self.sparsities),
                "prune.sparsity",
                f"pattern {self.pattern} prunes exactly {implied:g}: set prune.sparsity to {implied:g}",
            )
            one_step = self.method in ("oneshot", "at_init") and self.iterations in (None, 1)
            check(
                one_step and self.structure != "channel",
                "prune.pattern",
                "N:M patterns prune in one step: method oneshot or at_init, 1 iteration",
            )
        check(
            isinstance(self.rewind, str) and bool(REWIND.fullmatch(self.rewind)),
            "prune.rewind",
            f"init | epoch:K | iter:N | lr | finetune, got {short(self.rewind)}",
        )
        bounded(self.retrain_epochs, "prune.retrain_epochs", 0, MAX_EPOCHS)
        bounded(self.finetune_lr, "prune.finetune_lr", 0, 1e3, low_open=True)
        bounded(self.dense_epochs, "prune.dense_epochs", 1, MAX_EPOCHS)
        bounded(self.layer_epochs, "prune.layer_epochs", 0, MAX_EPOCHS)
        check(
            self.tau is None or self.tau == "auto" or (isinstance(self.tau, int) and 0 <= self.tau <= MAX_EPOCHS),
            "prune.tau",
            f"an integer in [0, {MAX_EPOCHS}], auto or null, got {short(self.tau)}",
        )
        bounded(self.tau_tolerance, "prune.tau_tolerance", 0, 1e6)
        bounded(self.tau_min, "prune.tau_min", 1, MAX_EPOCHS)
        bounded(self.tau_max, "prune.tau_max", 1, MAX_EPOCHS)
        check(self.tau_max is None or self.tau_max >= self.tau_min, "prune.tau_max", "must be >= tau_min or null")
        check(self.ignore is None or len(self.ignore) <= MAX_LIST, "prune.ignore", f"at most {MAX_LIST} names")
        check(len(self.layer_rate) <= MAX_LIST, "prune.layer_rate", f"at most {MAX_LIST} entries")
        for name, r in self.layer_rate.items():
            check(0.0 <= r < 1.0, f"prune.layer_rate.{clip(name, 40)}", f"must be in [0, 1), got {short(r)}")
        check(self.control in ("none", "reinit", "random"), "prune.control", "none | reinit | random")
        bounded(self.score_batches, "prune.score_batches", 1, MAX_STEPS)
        check(0.0 <= self.min_density <= 1.0, "prune.min_density", "must be in [0, 1]")
        bounded(self.iterations, "prune.iterations", 1, MAX_STEPS)
        bounded(self.min_channels, "prune.min_channels", 1, MAX_CLASSES)
        bounded(self.round_to, "prune.round_to", 1, MAX_CLASSES)  # 1 = exact widths
        check(0.0 <= self.initial_sparsity < 1.0, "prune.initial_sparsity", "must be in [0, 1)")
        bounded(self.begin_epoch, "prune.begin_epoch", 0, MAX_EPOCHS)
        bounded(self.end_epoch, "prune.end_epoch", 0, MAX_EPOCHS)
        check(self.end_epoch is None or self.end_epoch > self.begin_epoch, "prune.end_epoch", "must be > begin_epoch")
        bounded(self.frequency, "prune.frequency", 1, 10**9)
        bounded(self.s_init, "prune.s_init", -100, 100)
        bounded(self.s_decay, "prune.s_decay", 0, 1e3)
        check(len(self.layer_ratio) <= MAX_LIST, "prune.layer_ratio", f"at most {MAX_LIST} entries")
        for name, r in self.layer_ratio.items():
            check(0.0 <= r < 1.0, f"prune.layer_ratio.{clip(name, 40)}", f"must be in [0, 1), got {short(r)}")
        check(
            not (self.layer_ratio or self.ratios_file) or self.method in ("oneshot", "at_init"),
            "prune.layer_ratio",
            f"per-layer ratios apply to methods oneshot and at_init, not {short(self.method)}",
        )
        check(len(self.budget) <= 1, "prune.budget", f"name one of flops, params, latency; got {short(self.budget)}")
        for kind, v in self.budget.items():
            known = kind in ("flops", "params", "latency")
            check(known, "prune.budget", f"flops | params | latency, got {short(kind)}")
            check(0.0 < v <= 1.0, f"prune.budget.{kind}", f"the fraction kept must be in (0, 1], got {short(v)}")
        bounded(self.episodes, "prune.episodes", 1, MAX_STEPS)
        check(0 <= self.warmup_episodes <= self.episodes, "prune.warmup_episodes", "must be in [0, episodes]")
        check(self.reward in ("error", "error_log_flops"), "prune.reward", "error | error_log_flops")
        bounded(self.reward_examples, "prune.reward_examples", 1, 10**9)
        bounded(self.aux_penalty, "prune.aux_penalty", 0, 1e6)
        bounded(self.aux_init, "prune.aux_init", 0, 1e6, low_open=True)
        bounded(self.bit_penalty, "prune.bit_penalty", 0, 1e6)
        bounded(self.bits_init, "prune.bits_init", 2, 16)
        bounded(self.bits_min, "prune.bits_min", 2, 16)
        check(self.bits_min <= self.bits_init, "prune.bits_min", f"must be <= prune.bits_init ({self.bits_init})")
        bounded(self.bits_lr, "prune.bits_lr", 0, 1e3, low_open=True)
        bounded(self.bits_fixed_epochs, "prune.bits_fixed_epochs", 0, MAX_EPOCHS)
        if self.method == "amc":
            check(
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
    rounds = math.log1p(-target) / math.log1p(-rate)  # log1p: a rate of 1e-300 is not a division by zero
    return math.ceil(rounds - 1e-9) if rounds <= MAX_ROUNDS else MAX_ROUNDS + 1
