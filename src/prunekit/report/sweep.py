"""Runs of a sweep grouped (configs identical except `seed` and `name`) and summarised as mean, std and n."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prunekit.common.stats import mean_std
from prunekit.report.runs import RunInfo, differing_labels, flat

IGNORED_KEYS = ("name", "seed")
# matplotlib's tab10, then darker tones for an 11th-16th group
_TAB = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
PALETTE = [*_TAB, "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d"]


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (0 for a single value) and count of the values that were present."""

    mean: float
    std: float
    n: int


def stat(values: Iterable[float | None]) -> Stat | None:
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return Stat(*mean_std(present), len(present))


def config_key(run: RunInfo) -> str:
    """What a run shares with the other seeds of its sweep; a run without config.yaml is a group of its own."""
    if not run.config:
        return f"path:{run.path}"
    kept = {k: v for k, v in flat(run.config).items() if k not in IGNORED_KEYS and not k.startswith("log.")}
    kept["summary"] = (run.model, run.dataset, run.method)
    return json.dumps(kept, sort_keys=True, default=str)


@dataclass
class Group:
    """Runs that differ only in seed and name: one curve, one colour, one row in the summary tables."""

    label: str
    runs: list[RunInfo]
    color: str = PALETTE[0]

    @property
    def first(self) -> RunInfo:
        return self.runs[0]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def finished(self) -> list[RunInfo]:
        return [r for r in self.runs if r.complete]

    @property
    def legend(self) -> str:
        return self.label if self.n == 1 else f"{self.label} (n={self.n})"

    def stat(self, fn: Callable[[RunInfo], float | None]) -> Stat | None:
        return stat(fn(r) for r in self.runs)

    def finished_stat(self, fn: Callable[[RunInfo], float | None]) -> Stat | None:
        return stat(fn(r) for r in self.finished)

    def curve(self) -> list[tuple[Stat, Stat, dict[str, Stat | None]]]:
        """Per round index: (sparsity, accuracy, other round fields) over the runs that finished that round."""
        out = []
        for i in range(max(len(r.rounds) for r in self.runs)):
            rows = [r.rounds[i] for r in self.runs if len(r.rounds) > i]
            fields = ("params", "flops", "epochs", "wall_seconds", "control_accuracy", "pruned_accuracy")
            others = {k: stat(row.get(k) for row in rows) for k in fields}
            out.append((stat(row["sparsity"] for row in rows), stat(row["test_accuracy"] for row in rows), others))
        return out


def _group_label(runs: list[RunInfo]) -> str:
    names = list(dict.fromkeys(r.name for r in runs))
    if len(runs) == 1:
        return runs[0].label
    if len(names) == 1:
        return names[0]
    prefix = os.path.commonprefix(names).rstrip("-_ .")
    return prefix or names[0]


def group_runs(runs: list[RunInfo]) -> list[Group]:
    """Groups in the order their first run appears, with unique labels and a colour assigned once."""
    by_key: dict[str, list[RunInfo]] = {}
    for r in runs:
        by_key.setdefault(config_key(r), []).append(r)
    groups = [Group(_group_label(members), members) for members in by_key.values()]
    labels = [g.label for g in groups]
    for g in groups:  # runs of one config file with different --set: their method labels first (IMP+WR, AIMP ...)
        if labels.count(g.label) > 1:
            g.label = f"{g.label}: {g.first.method_label}"
    configs = [g.first.config for g in groups]  # still alike: the config keys that differ
    for g, label in zip(groups, differing_labels([g.label for g in groups], configs, IGNORED_KEYS), strict=True):
        g.label = label
    seen: dict[str, int] = {}
    for g in groups:
        seen[g.label] = seen.get(g.label, 0) + 1
        if seen[g.label] > 1:
            g.label = f"{g.label} #{seen[g.label]}"
    for i, g in enumerate(groups):
        g.color = PALETTE[i % len(PALETTE)]
    return groups


def _distance(a: RunInfo, b: RunInfo) -> int:
    fa, fb = flat(a.config), flat(b.config)
    skip = {*IGNORED_KEYS, "prune.tau"}
    return sum(1 for k in fa.keys() | fb.keys() if k not in skip and fa.get(k) != fb.get(k))


def speedups(groups: list[Group]) -> dict[str, tuple[Group, Stat | None, Stat | None]]:
    """AIMP group label -> (the IMP group it is compared with, IMP/AIMP wall-time ratio, IMP/AIMP epoch ratio).

    Only finished runs count; the IMP group is the one on the same model and dataset whose config differs least.
    """
    out = {}
    for g in groups:
        if not g.first.is_aimp or not g.finished:
            continue
        candidates = [
            h
            for h in groups
            if h.first.method == "imp"
            and not h.first.is_aimp
            and h.finished
            and (h.first.model, h.first.dataset) == (g.first.model, g.first.dataset)
        ]
        if not candidates:
            continue
        imp = min(candidates, key=lambda h: _distance(h.first, g.first))
        wall, epochs = (_ratio(imp.finished_stat(fn), g.finished_stat(fn)) for fn in (_wall, _epochs))
        out[g.label] = (imp, wall, epochs)
    return out


def _wall(r: RunInfo) -> float | None:
    return r.wall_seconds


def _epochs(r: RunInfo) -> float | None:
    return r.epochs


def _ratio(num: Stat | None, den: Stat | None) -> Stat | None:
    if num is None or den is None or den.mean == 0:
        return None
    return Stat(num.mean / den.mean, 0.0, min(num.n, den.n))
