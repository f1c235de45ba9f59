"""Gradual magnitude pruning while training (Zhu & Gupta 2017), with any criterion and allocation."""

from __future__ import annotations

from prunekit.config import Config
from prunekit.pruning.methods.plan import METHODS, RoundPlan, dense_round, retrain_epochs


@METHODS.register("gradual")
def gradual(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    """Round 0 trains the dense network; round 1 keeps training it while the sparsity rises on a cubic schedule."""
    p = cfg.prune
    epochs = retrain_epochs(cfg)
    end = p.end_epoch if p.end_epoch is not None else 0.75 * epochs
    schedule = {"initial": p.initial_sparsity, "final": max(p.sparsities), "begin": p.begin_epoch, "end": end}
    return [
        dense_round(cfg),
        RoundPlan(index=1, base=0, weights="keep", epochs=epochs, schedule="train", during="gradual", gradual=schedule),
    ]
