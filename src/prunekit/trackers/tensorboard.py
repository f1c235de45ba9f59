"""TensorBoard: scalars per round (`round/...`, step = round index) and per epoch (`epoch/...`, step = epochs trained
in the run), the config as text, and the final summary table. Event files go to DIR/tensorboard, so
`tensorboard --logdir SWEEP_DIR` shows every run of a sweep by its directory name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit import config as config_mod
from prunekit.config import Config
from prunekit.trackers.metrics import round_metrics


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, cfg: Config, out: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # ImportError without the tensorboard package

        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        self.writer.add_text("config", "```yaml\n" + config_mod.dump(cfg) + "```", 0)

    def round(self, index: int, row: dict[str, Any], epochs: list[tuple[int, dict[str, float]]]) -> None:
        for key, value in round_metrics(row).items():
            self.writer.add_scalar(f"round/{key}", value, index)
        for step, values in epochs:
            for key, value in values.items():
                self.writer.add_scalar(f"epoch/{key}", value, step)
        self.writer.flush()

    def finish(self, out: Path, summary: dict[str, Any]) -> None:
        from prunekit.report.run_tables import rounds_table

        self.writer.add_text("summary", rounds_table(summary), len(summary["rounds"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
