"""One-shot pruning: train once, prune to each target from the same trained network, optionally fine-tune."""

from __future__ import annotations

from prunekit.config import Config
from prunekit.pruning.methods import METHODS, RoundPlan, dense_round, retrain_epochs


@METHODS.register("oneshot")
def oneshot(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    """Round 0 trains the dense network; round i prunes it to sparsities[i-1] and fine-tunes at a constant lr."""
    epochs = retrain_epochs(cfg)
    rounds = [dense_round(cfg)]
    for i, s in enumerate(cfg.prune.sparsities, start=1):
        rounds.append(RoundPlan(index=i, base=0, sparsity=s, weights="keep", epochs=epochs, schedule="finetune"))
    return rounds
