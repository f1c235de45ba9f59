"""prune.compress: the options of structured compression of a Hugging Face decoder (`prune.structure: compress`,
`prune.method: compress`) and of its recovery by distillation from the uncompressed model."""

from __future__ import annotations

from dataclasses import dataclass

from prunekit.common.safe_text import short
from prunekit.config.checks import bounded, check


@dataclass(frozen=True)
class CompressOptions:
    width: bool = True  # remove MLP units and attention heads
    depth: bool = False  # remove whole blocks
    hidden: bool | float = False  # hidden size too: true = shares the budget with width; a number = that fraction
    heads: str = (
        "groups"  # groups (whole key/value heads with their query heads) | within (query heads per group) | none
    )
    importance: str = "activation"  # activation (Minitron, from prune.score_batches batches) | magnitude
    block_metric: str = "influence"  # influence (ShortGPT) | angular (Gromov et al.: consecutive blocks)
    depth_share: float = 0.5  # width and depth: the share of the removed parameters taken by whole blocks
    round_to: int = 8  # MLP widths keep a multiple of it
    distill: bool = True  # recover by distillation from the uncompressed model (else the task's own loss)
    temperature: float = 2.0  # distillation: softmax temperature T (the KL is scaled by T^2)
    lm_weight: float = 0.0  # distillation: weight of the task's own loss (the LM loss) added to the KL

    def __post_init__(self) -> None:
        check(
            self.heads in ("groups", "within", "none"),
            "prune.compress.heads",
            f"groups | within | none, got {short(self.heads)}",
        )
        check(self.importance in ("activation", "magnitude"), "prune.compress.importance", "activation | magnitude")
        check(self.block_metric in ("influence", "angular"), "prune.compress.block_metric", "influence | angular")
        check(
            self.width or self.depth or bool(self.hidden),
            "prune.compress.width",
            "width, depth and hidden are all false: nothing to remove",
        )
        check(
            isinstance(self.hidden, bool) or 0.0 <= self.hidden < 1.0,
            "prune.compress.hidden",
            f"true, false or the fraction of hidden channels to remove, in [0, 1) (1 leaves none), got {self.hidden}",
        )
        check(0.0 < self.depth_share < 1.0, "prune.compress.depth_share", "must be in (0, 1)")
        bounded(self.round_to, "prune.compress.round_to", 1, 4096)
        bounded(self.temperature, "prune.compress.temperature", 0, 100, low_open=True)
        bounded(self.lm_weight, "prune.compress.lm_weight", 0, 1e3)

    def distillation(self) -> dict[str, float] | None:
        """What a retraining round's plan carries: the distillation settings, or None (the task's own loss)."""
        return {"temperature": self.temperature, "lm_weight": self.lm_weight} if self.distill else None
