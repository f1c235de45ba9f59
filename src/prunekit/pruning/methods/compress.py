"""Structured compression of a pretrained Hugging Face decoder, then recovery (prune.structure: compress).

Round 0 is the pretrained network as built (prune.dense_epochs of training, default none: it is evaluated and
checkpointed, and it is the teacher); round i compresses it to remove sparsities[i-1] of its parameters and
retrains for prune.retrain_epochs at the fine-tuning lr, by distillation from round 0 unless
prune.compress.distill is false.
"""

from __future__ import annotations

from prunekit.config import Config
from prunekit.pruning.methods.plan import METHODS, RoundPlan, retrain_epochs


@METHODS.register("compress")
def compress(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    dense = RoundPlan(index=0, base=None, weights="init", epochs=cfg.prune.dense_epochs or 0)
    distill = cfg.prune.compress.distillation()
    return [dense] + [
        RoundPlan(index=i, base=0, sparsity=s, epochs=retrain_epochs(cfg), schedule="finetune", distill=distill)
        for i, s in enumerate(cfg.prune.sparsities, start=1)
    ]
