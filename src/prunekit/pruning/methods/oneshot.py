"""One-shot pruning: train once, prune to each target from the same trained network, optionally retrain.

Retraining after the prune is fine-tuning at a constant lr (prune.finetune_lr, default the final training lr), or,
with `prune.rewind: lr`, a replay of the training lr schedule squeezed into the retraining epochs (Renda et al.
2020's learning-rate rewinding, applied once).
"""

from __future__ import annotations

from prunekit.config import Config
from prunekit.pruning.methods import METHODS, RoundPlan, dense_round, retrain_epochs


@METHODS.register("oneshot")
def oneshot(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    """Round 0 trains the dense network; round i prunes it to sparsities[i-1] and retrains."""
    epochs = retrain_epochs(cfg)
    replay = cfg.prune.rewind == "lr"
    squeeze = cfg.train.epochs / epochs if replay and epochs else 1.0
    rounds = [dense_round(cfg)]
    for i, s in enumerate(cfg.prune.sparsities, start=1):
        rounds.append(
            RoundPlan(
                index=i,
                base=0,
                sparsity=s,
                weights="keep",
                epochs=epochs,
                schedule="train" if replay else "finetune",
                squeeze=squeeze,
            )
        )
    return rounds
