"""Iterative magnitude pruning and its retraining variants (Frankle & Carbin 2019; Renda et al. 2020; AIMP).

Each round k removes `rate` of the remaining weights (per-tensor rates from `layer_rate`), then retrains:
  init      rewind surviving weights to theta_0, replay the full schedule (weight rewinding, lottery tickets)
  epoch:K   rewind to the weights after K epochs of round 0, resume the schedule at epoch K (late rewinding)
  lr        keep the trained weights, replay the schedule (learning-rate rewinding): all of it, or with fewer
            retraining epochs t than the schedule's T its last t epochs (Renda et al. 2020), or with prune.squeeze
            all of it squeezed into t
  finetune  keep the trained weights, train at the constant fine-tuning lr (prunekit.train.optim.finetune_lr)
AIMP (`tau`): every round but the last retrains only tau epochs, the lr schedule squeezed into them.
Adaptive AIMP (`tau: auto`): every round but the last retrains until its validation metric is back within
`tau_tolerance` of the previous round's, after at least `tau_min` and at most `tau_max` epochs (null: the full
retraining; the lr schedule is squeezed into tau_max epochs, so an early stop cuts it short); the last round trains
fully. The run records the epochs each round actually trained.
"""

from __future__ import annotations

from prunekit.common.errors import UserError
from prunekit.common.wording import plural
from prunekit.config import Config, rounds_needed
from prunekit.pruning.methods.plan import METHODS, RoundPlan, dense_round, replay, retrain_epochs


def round_count(cfg: Config) -> int:
    """prune.rounds, or the rounds of `rate` needed to reach prune.sparsity."""
    if cfg.prune.rounds is not None:
        return cfg.prune.rounds
    return rounds_needed(max(cfg.prune.sparsities), cfg.prune.rate)  # at most MAX_ROUNDS: the config checked it


def round_target(cfg: Config, sizes: dict[str, int], k: int) -> tuple[float, dict[str, float]]:
    """Total sparsity after k rounds, and the densities fixed by per-tensor rates."""
    p = cfg.prune
    unknown = sorted(set(p.layer_rate) - set(sizes))
    if unknown:
        raise UserError(f"prune.layer_rate names no prunable tensor: {unknown}; prunable: {sorted(sizes)}")
    fixed = {n: (1.0 - r) ** k for n, r in p.layer_rate.items()}
    kept = sum(sizes[n] * fixed.get(n, (1.0 - p.rate) ** k) for n in sizes)
    sparsity = 1.0 - kept / sum(sizes.values())
    if p.rounds is None and not fixed:
        sparsity = min(sparsity, max(p.sparsities))
    return sparsity, fixed


@METHODS.register("imp")
def imp(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    p, total = cfg.prune, retrain_epochs(cfg)
    n = round_count(cfg)
    kind, _, arg = p.rewind.partition(":")
    start = int(arg) if kind == "epoch" else 0
    if kind == "iter":
        raise UserError("prune.rewind iter:N is not supported yet: use epoch:K")
    if kind == "epoch" and not 0 <= start < cfg.train.epochs:
        raise UserError(f"prune.rewind epoch:{start} must be inside round 0's {plural(cfg.train.epochs, 'epoch')}")
    if kind == "epoch" and p.dense_epochs is not None:
        raise UserError("prune.rewind epoch:K counts epochs of the full schedule: leave prune.dense_epochs null")
    full = total - start if kind == "epoch" else total  # epochs of a full retraining round
    span = full  # schedule epochs a full round plays, from `start`
    if kind == "lr":
        start, pace = replay(cfg, total)
        span = total * pace
    rounds = [dense_round(cfg)]
    for k in range(1, n + 1):
        sparsity, fixed = round_target(cfg, sizes, k)
        adaptive = p.tau == "auto" and k < n
        if adaptive:
            epochs = min(full if p.tau_max is None else p.tau_max, full)
        else:
            epochs = full if (p.tau is None or p.tau == "auto" or k == n) else min(p.tau, full)
        squeeze = span / epochs if epochs and kind != "finetune" else 1.0
        rounds.append(
            RoundPlan(
                index=k,
                base=k - 1,
                sparsity=sparsity,
                fixed=fixed,
                weights={"init": "init", "epoch": "rewind"}.get(kind, "keep"),
                epochs=epochs,
                schedule="finetune" if kind == "finetune" else "train",
                start_epoch=start,
                squeeze=squeeze,
                stop_within=p.tau_tolerance if adaptive else None,
                min_epochs=min(p.tau_min, epochs) if adaptive else 0,
            )
        )
    return rounds
