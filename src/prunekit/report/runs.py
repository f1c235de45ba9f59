"""Finding run directories and reading them tolerantly: runs still in progress and missing optional fields are fine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prunekit.errors import UserError

REWIND_NAMES = {"init": "WR", "lr": "LRR", "finetune": "FT"}
METHOD_NAMES = {
    "oneshot": "one-shot",
    "none": "dense",
    "at_init": "at-init",
    "str": "STR",
    "amc": "AMC",
    "autoprune": "AutoPrune",
}


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no summary.json)")
    try:
        summary = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(summary, dict):
        raise UserError(f"{path} is not a run summary (expected a JSON object)")
    return summary


def load_config(run_dir: Path) -> dict[str, Any]:
    """config.yaml beside summary.json as a plain mapping; {} when it is missing or unreadable."""
    path = Path(run_dir) / "config.yaml"
    try:
        values = yaml.safe_load(path.read_text()) if path.is_file() else {}
    except yaml.YAMLError:
        return {}
    return values if isinstance(values, dict) else {}


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories given directly or found anywhere below the given directories."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "summary.json").is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(s.parent for s in p.rglob("summary.json")))
        else:
            raise UserError(f"{p}: no such run directory")
    if not found:
        raise UserError(f"no run directories (with summary.json) under {', '.join(map(str, paths))}")
    return list(dict.fromkeys(found))


@dataclass
class RunInfo:
    """One run directory: its summary, its resolved config, and the label it goes by in a report."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def prune(self) -> dict[str, Any]:
        return self.config.get("prune") or {}

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.config.get("name") or self.path.name)

    @property
    def model(self) -> str:
        return str(self.summary.get("model") or (self.config.get("model") or {}).get("name") or "?")

    @property
    def dataset(self) -> str:
        return str(self.summary.get("dataset") or (self.config.get("data") or {}).get("name") or "?")

    @property
    def method(self) -> str:
        return str(self.summary.get("method") or self.prune.get("method") or "?")

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def complete(self) -> bool:
        return self.summary.get("complete", True) is not False

    @property
    def rounds(self) -> list[dict[str, Any]]:
        """Finished rounds that carry a sparsity and an accuracy."""
        rows = self.summary.get("rounds") or []
        return [r for r in rows if r.get("sparsity") is not None and r.get("test_accuracy") is not None]

    @property
    def dense_accuracy(self) -> float | None:
        value = self.summary.get("dense_accuracy")
        return value if value is not None else next((r["test_accuracy"] for r in self.rounds[:1]), None)

    @property
    def final_accuracy(self) -> float | None:
        value = self.summary.get("final_accuracy")
        return value if value is not None else next((r["test_accuracy"] for r in self.rounds[-1:]), None)

    @property
    def final_sparsity(self) -> float | None:
        value = self.summary.get("final_sparsity")
        return value if value is not None else next((r["sparsity"] for r in self.rounds[-1:]), None)

    @property
    def best_accuracy(self) -> float | None:
        """The best accuracy of a pruned round (round 0 is the dense network)."""
        return max((r["test_accuracy"] for r in self.rounds[1:]), default=None)

    @property
    def epochs(self) -> int | None:
        value = self.summary.get("total_epochs")
        return value if value is not None else (sum(r.get("epochs") or 0 for r in self.rounds) or None)

    @property
    def wall_seconds(self) -> float | None:
        value = self.summary.get("wall_seconds")
        return value if value is not None else (sum(r.get("wall_seconds") or 0 for r in self.rounds) or None)

    @property
    def structured(self) -> bool:
        return "channel" in (self.summary.get("structure"), self.prune.get("structure"))

    @property
    def is_aimp(self) -> bool:
        return self.method == "imp" and self.prune.get("tau") is not None

    def highest_within(self, points: float = 1.0) -> float | None:
        """The highest sparsity whose accuracy is within `points` percentage points of the dense accuracy."""
        dense = self.dense_accuracy
        if dense is None:
            return None
        return max((r["sparsity"] for r in self.rounds if r["test_accuracy"] >= dense - points / 100), default=None)

    @property
    def method_label(self) -> str:
        """The method as the papers name it: IMP+WR, IMP+LRR, AIMP τ=40 (WR), one-shot, ..."""
        p, method = self.prune, self.method
        if method == "imp":
            kind, _, arg = str(p.get("rewind", "init")).partition(":")
            rewind = REWIND_NAMES.get(kind, f"WR@{arg}" if kind == "epoch" else kind)
            text = f"AIMP τ={p['tau']} ({rewind})" if self.is_aimp else f"IMP+{rewind}"
        else:
            text = METHOD_NAMES.get(method, method)
        extras = [p.get("criterion")] if p.get("criterion") not in (None, "magnitude") else []
        extras += ["channel"] if self.structured else []
        return " ".join([text, *extras])


def load_runs(run_dirs: list[Path]) -> list[RunInfo]:
    """RunInfo for each directory, each with a label that is unique within the list."""
    runs = [RunInfo(Path(d), load_summary(d), load_config(d)) for d in run_dirs]
    names = [r.name for r in runs]
    for r in runs:
        r.label = r.name if names.count(r.name) == 1 else f"{r.name} ({r.path.name})"
    labels = [r.label for r in runs]
    for i, r in enumerate(runs):
        if labels.count(r.label) > 1:
            r.label = f"{r.label} #{i + 1}"
    return runs
