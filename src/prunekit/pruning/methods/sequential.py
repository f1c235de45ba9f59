"""Layer-by-layer channel pruning, as ThiNet does it (Luo et al. 2017): one channel group per round, bottom up.

Round 0 trains the dense network. Round k prunes only the k-th prunable channel group (in network order; for
channel runs `sizes` lists the groups) to prune.sparsity of its channels, so the criterion scores a network whose
lower layers are already pruned and fine-tuned: ThiNet samples the layer's inputs from that partly pruned network,
not from the original one. Each round then fine-tunes prune.layer_epochs epochs at the fine-tuning lr (0: prune the
next layer at once). The last round retrains prune.retrain_epochs (null = train.epochs) instead: fine-tuning, or
with `prune.rewind: lr` a replay of the training schedule, as in one-shot pruning.
"""

from __future__ import annotations

from prunekit.common.errors import UserError
from prunekit.config import Config
from prunekit.pruning.methods.plan import METHODS, RoundPlan, dense_round, replay, retrain_epochs


@METHODS.register("sequential")
def sequential(cfg: Config, sizes: dict[str, int]) -> list[RoundPlan]:
    p = cfg.prune
    if len(p.sparsities) != 1:
        raise UserError(f"method sequential prunes every layer to one prune.sparsity, not a list: {list(p.sparsity)}")
    if not sizes:
        raise UserError("method sequential found no prunable channel group (all ignored?)")
    rounds = [dense_round(cfg)]
    groups = list(sizes)
    for k, group in enumerate(groups, start=1):
        last = k == len(groups)
        epochs = retrain_epochs(cfg) if last else p.layer_epochs
        rewind_lr = last and p.rewind == "lr"
        start, squeeze = replay(cfg, epochs) if rewind_lr else (0, 1.0)
        rounds.append(
            RoundPlan(
                index=k,
                base=k - 1,
                sparsity=p.sparsities[0],
                weights="keep",
                epochs=epochs,
                schedule="train" if rewind_lr else "finetune",
                start_epoch=start,
                squeeze=squeeze,
                layers=(group,),
            )
        )
    return rounds
