"""One-shot pruning: train once, prune to each target from the same trained network, optionally retrain.

Retraining after the prune is fine-tuning at a constant lr (prune.finetune_lr; null = the default of
prunekit.train.optim.finetune_lr), or, with `prune.rewind: lr`, Renda et al. 2020's learning-rate rewinding applied
once: the training schedule replayed at its own pace, all of it when prune.retrain_epochs is null (= train.epochs),
its last retrain_epochs epochs otherwise; `prune.squeeze: true` plays the whole schedule squeezed into the retraining
epochs instead (AIMP-style).
"""

from __future__ import annotations

from prunekit.config import Config
from prunekit.pruning.methods.plan import METHODS, RoundPlan, dense_round, replay, retrain_epochs


@METHODS.register("oneshot")
def oneshot(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    """Round 0 trains the dense network; round i prunes it to sparsities[i-1] and retrains."""
    epochs = retrain_epochs(cfg)
    rewind_lr = cfg.prune.rewind == "lr"
    start, squeeze = replay(cfg, epochs) if rewind_lr else (0, 1.0)
    rounds = [dense_round(cfg)]
    for i, s in enumerate(cfg.prune.sparsities, start=1):
        rounds.append(
            RoundPlan(
                index=i,
                base=0,
                sparsity=s,
                weights="keep",
                epochs=epochs,
                schedule="train" if rewind_lr else "finetune",
                start_epoch=start,
                squeeze=squeeze,
            )
        )
    return rounds
