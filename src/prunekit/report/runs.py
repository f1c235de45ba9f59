"""Finding run directories and reading them tolerantly: runs still in progress and missing optional fields are fine."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunekit import config as config_mod
from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, load_yaml
from prunekit.report import legacy
from prunekit.store import summary as run_summary

REWIND_NAMES = {"init": "WR", "lr": "LRR", "finetune": "FT"}
METHOD_NAMES = {
    "oneshot": "one-shot",
    "none": "dense",
    "at_init": "at-init",
    "str": "STR",
    "amc": "AMC",
    "autoprune": "AutoPrune (reconstr.)",  # reconstructions from the papers' abstracts: docs/results/criteria.md
    "bitprune": "BitPruning (reconstr.)",
}
SECTIONS = ("model", "data", "train", "prune")
MAX_LABEL = 48  # characters of a run's name in tables and legends


def load_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json, checked field by field (a damaged one is a UserError naming the file and the field)."""
    return run_summary.load(run_dir)


def load_config(run_dir: Path) -> dict[str, Any]:
    """config.yaml beside summary.json as a plain mapping ({} when missing); a damaged one is a UserError."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return {}
    values = load_yaml(path, "run config")
    if not isinstance(values, dict) or any(not isinstance(values.get(k, {}), dict) for k in SECTIONS):
        raise UserError(
            f"{path} is damaged: not a mapping with mappings {', '.join(SECTIONS)}; rerun or delete the run"
        )
    return with_defaults(values)


def with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """The config as today's prunekit resolves it: keys added since the run was written take their defaults, so the
    seeds of one config group together whichever version wrote them; a config today's code rejects stays as written."""
    try:
        return config_mod.from_dict(values).to_dict()
    except UserError:
        return values


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
        return clip(str(self.summary.get("name") or self.config.get("name") or self.path.name), MAX_LABEL)

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


def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys (depth is bounded by the YAML reader)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + str(k)] = v
    return out


def _value(v: Any) -> str:
    text = "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    return clip(text, 16)


def differing_labels(names: list[str], configs: list[dict[str, Any]], ignore: tuple[str, ...] = ("name",)) -> list[str]:
    """Labels for items that share a name: the name and the config keys whose values tell them apart.

    e.g. two runs named aimp_lenet300_wr become "aimp_lenet300_wr: tau=1" and "aimp_lenet300_wr: tau=null".
    """
    labels = list(names)
    for name in {n for n in names if names.count(n) > 1}:
        members = [i for i, n in enumerate(names) if n == name]
        flats = [flat(configs[i]) for i in members]
        keys = sorted({k for f in flats for k in f if k not in ignore and len({repr(g.get(k)) for g in flats}) > 1})
        leaves = [k.rsplit(".", 1)[-1] for k in keys]
        shown = [leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(keys, leaves, strict=True)]
        common = {k: Counter(repr(g.get(k)) for g in flats).most_common(1)[0][0] for k in keys}
        for i, f in zip(members, flats, strict=True):
            parts = [f"{label}={_value(f.get(key))}" for key, label in zip(keys, shown, strict=True)]
            text = f"{name}: {', '.join(parts)}"
            if len(text) > MAX_LABEL + 16:  # too long to show whole: only where this run differs from most
                parts = [p for p, key in zip(parts, keys, strict=True) if repr(f.get(key)) != common[key]]
                text = f"{name}: {', '.join(parts)}" if parts else f"{name}: the common settings"
            labels[i] = clip(text, MAX_LABEL + 16) if keys else name
    return labels


def load_runs(run_dirs: list[Path]) -> list[RunInfo]:
    """RunInfo for each directory, each with a label that is unique within the list and says what differs."""
    runs = []
    for d in run_dirs:
        config = load_config(d)
        runs.append(RunInfo(Path(d), legacy.upgrade(load_summary(d), config), config))
    for r, label in zip(runs, differing_labels([r.name for r in runs], [r.config for r in runs]), strict=True):
        r.label = label
    names = [r.label for r in runs]
    for r in runs:
        r.label = r.label if names.count(r.label) == 1 else f"{r.label} ({clip(r.path.name, 24)})"
    labels = [r.label for r in runs]
    for i, r in enumerate(runs):
        if labels.count(r.label) > 1:
            r.label = f"{r.label} #{i + 1}"
    return runs
