"""Pruning at initialisation: SNIP, GraSP, SynFlow and random pruning with layer-wise ratios, then training.

Round 0 is the network at initialisation (0 epochs, only evaluated). Each later round starts again from those
initial weights, prunes them to one target of `prune.sparsity` (a list gives one round per target, as oneshot
does) with the run's criterion and allocation, in `prune.iterations` steps (null: SynFlow 100, others 1), and
trains the sparse network from there for `prune.retrain_epochs` epochs (null = train.epochs, the full schedule).

Random pruning with layer-wise ratios (uniform, ERK, ER, SNIP-ratio) is `criterion: random, scope: layerwise,
allocation: uniform | erk | er | snip`.
"""

from __future__ import annotations

from prunekit.config import Config
from prunekit.pruning.methods.plan import METHODS, RoundPlan, iterations, retrain_epochs


def init_round() -> RoundPlan:
    """Round 0: the initial weights, evaluated without training."""
    return RoundPlan(index=0, base=None, weights="init", epochs=0)


@METHODS.register("at_init")
def at_init(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    epochs, steps = retrain_epochs(cfg), iterations(cfg)
    rounds = [init_round()]
    for i, s in enumerate(cfg.prune.sparsities, start=1):
        rounds.append(
            RoundPlan(index=i, base=0, sparsity=s, weights="keep", epochs=epochs, schedule="train", iterations=steps)
        )
    return rounds
