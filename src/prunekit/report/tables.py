"""Tables in the forms the source documents use, each built once and rendered as Markdown (here) or HTML (html.py).

Accuracies and sparsities are shown in percent; a sweep's cell is `mean ± std` over its seeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from prunekit.report.runs import RunInfo
from prunekit.report.sweep import Group, Stat

NUMBER = re.compile(r"^-?\d")


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""

    def numeric(self) -> list[bool]:
        """Per column: whether every filled cell is a number (right-aligned) rather than text (left-aligned)."""
        return [
            i > 0 and all(NUMBER.match(row[i]) or row[i] in ("", "-") for row in self.rows)
            for i in range(len(self.header))
        ]

    def without_empty_columns(self) -> Table:
        """The table less the columns (after the first) where no row has a value."""
        keep = [0] + [i for i in range(1, len(self.header)) if any(row[i] not in ("", "-") for row in self.rows)]
        return Table(self.title, [self.header[i] for i in keep], [[r[i] for i in keep] for r in self.rows], self.note)

    def without_constant_columns(self, names: tuple[str, ...]) -> Table:
        """The table less the named columns whose value is the same in every row (stated in the note instead)."""
        drop = [
            i
            for i, h in enumerate(self.header)
            if h in names and len(self.rows) > 1 and len({row[i] for row in self.rows}) == 1
        ]
        if not drop:
            return self
        said = "; ".join(f"{self.header[i]}: {self.rows[0][i]}" for i in drop)
        keep = [i for i in range(len(self.header)) if i not in drop]
        note = f"{said}. {self.note}" if self.note else said
        return Table(self.title, [self.header[i] for i in keep], [[r[i] for i in keep] for r in self.rows], note)

    def markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        align = "|" + "".join("---:|" if n else ":---|" for n in self.numeric())
        out = ["| " + " | ".join(map(cell, self.header)) + " |", align]
        out += ["| " + " | ".join(map(cell, row)) + " |" for row in self.rows]
        return "\n".join(out)


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def pct_stat(s: Stat | None, digits: int = 2) -> str:
    if s is None:
        return "-"
    return pct(s.mean, digits) if s.n == 1 else f"{pct(s.mean, digits)} ± {pct(s.std, digits)}"


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def num_stat(s: Stat | None, fmt: str = "{:.0f}") -> str:
    if s is None:
        return "-"
    return fmt.format(s.mean) if s.n == 1 else f"{fmt.format(s.mean)} ± {fmt.format(s.std)}"


def runs_table(runs: list[RunInfo]) -> Table:
    header = [
        "run",
        "model",
        "dataset",
        "method",
        "seed",
        "status",
        "dense acc %",
        "final sparsity %",
        "final acc %",
        "best acc %",
        "max sparsity within 1 pt %",
        "epochs",
        "wall s",
    ]
    rows = [
        [
            r.label,
            r.model,
            r.dataset,
            r.method_label,
            str(r.seed if r.seed is not None else "-"),
            "done" if r.complete else "in progress",
            pct(r.dense_accuracy),
            pct(r.final_sparsity),
            pct(r.final_accuracy),
            pct(r.best_accuracy),
            pct(r.highest_within()),
            fmt(r.epochs, "d"),
            fmt(r.wall_seconds, ".1f"),
        ]
        for r in runs
    ]
    table = Table(
        "Runs",
        header,
        rows,
        "best acc: the best pruned round; max sparsity within 1 pt: the highest "
        "sparsity whose test accuracy is at most 1 percentage point below the dense accuracy",
    )
    return table.without_constant_columns(("model", "dataset", "seed", "status")).without_empty_columns()


def sweep_table(groups: list[Group]) -> Table | None:
    """Groups of several seeds: mean ± sample std over the seeds."""
    sweeps = [g for g in groups if g.n > 1]
    if not sweeps:
        return None
    header = [
        "sweep",
        "n",
        "seeds",
        "dense acc %",
        "final acc %",
        "best acc %",
        "max sparsity within 1 pt %",
        "epochs",
        "wall s",
    ]
    rows = [
        [
            g.label,
            str(g.n),
            ", ".join(str(r.seed) for r in g.runs),
            pct_stat(g.stat(lambda r: r.dense_accuracy)),
            pct_stat(g.stat(lambda r: r.final_accuracy)),
            pct_stat(g.stat(lambda r: r.best_accuracy)),
            pct_stat(g.stat(lambda r: r.highest_within())),
            num_stat(g.stat(lambda r: r.epochs)),
            num_stat(g.stat(lambda r: r.wall_seconds), "{:.1f}"),
        ]
        for g in sweeps
    ]
    return Table("Sweeps (mean ± std over seeds)", header, rows, "runs whose configs differ only in seed and name")


def _seeds_stat(s: Stat | None, group: Group) -> str:
    """mean ± std, with the count of seeds when fewer than the group's have reached this point."""
    text = pct_stat(s)
    return f"{text} (n={s.n})" if s is not None and group.n > 1 and s.n < group.n else text


SNAP_POINTS = 0.25  # sparsities (in percent) closer than this share one column: 48.7% beside 48.8% is one
MAX_COLUMNS = 12  # wider than this, the ratio table is transposed (sparsities as rows) to fit a page


def snap(values: list[float], tolerance: float = SNAP_POINTS) -> dict[float, float]:
    """Each value -> the column it belongs to: values sorted, a new column wherever the gap to the previous value
    exceeds `tolerance`; a column is named by the value most runs reached (the smallest on a tie)."""
    columns: list[list[float]] = []
    for v in sorted(values):
        if columns and v - columns[-1][-1] <= tolerance:
            columns[-1].append(v)
        else:
            columns.append([v])
    out = {}
    for members in columns:
        name = max(sorted(set(members)), key=members.count)
        out |= {v: name for v in members}
    return out


def ratio_table(groups: list[Group]) -> Table:
    """The PyTorch evaluation's form: one column per sparsity reached (runs within SNAP_POINTS share a column),
    one row per run (or sweep); transposed when there are many sparsities."""
    reached = {g.legend: [(100 * s.mean, _seeds_stat(acc, g)) for s, acc, _ in g.curve()] for g in groups}
    grid = snap([x for row in reached.values() for x, _ in row])
    cells = {label: {} for label in reached}
    for label, row in reached.items():
        for x, text in row:
            cells[label].setdefault(round(grid[x], 1), text)
    columns = sorted({c for row in cells.values() for c in row})
    names = ["0 (dense)" if c == 0 else f"{c:g}%" for c in columns]
    note = f"columns: the fraction of prunable weights removed; sparsities within {SNAP_POINTS:g} points share one"
    if len(columns) > MAX_COLUMNS and len(columns) > len(cells):
        header = ["sparsity", *cells]
        rows = [[n] + [cells[label].get(c, "") for label in cells] for n, c in zip(names, columns, strict=True)]
        return Table("Test accuracy (%) by sparsity", header, rows, note.replace("columns", "rows"))
    rows = [[label] + [row.get(c, "") for c in columns] for label, row in cells.items()]
    return Table("Test accuracy (%) by sparsity", ["run", *names], rows, note)


def control_table(groups: list[Group]) -> Table | None:
    """The lottery-ticket form: per round, the ticket's accuracy beside its control's (mean ± std over seeds)."""
    rows = []
    for g in groups:
        curve = g.curve()
        if not any(others.get("control_accuracy") for *_, others in curve):
            continue
        for i, (s, acc, others) in enumerate(curve):
            control = others.get("control_accuracy")
            n = max(acc.n if acc else 0, control.n if control else 0)
            rows.append([g.legend, str(i), pct(None if s is None else 1 - s.mean), _seeds_stat(acc, g)])
            rows[-1] += [_seeds_stat(control, g), str(n)]
    if not rows:
        return None
    header = ["run", "round", "weights left %", "ticket %", "control %", "seeds"]
    note = "control: the same masks on a random re-initialisation (reinit), or random masks of its layer sparsities"
    return Table("Lottery tickets and their controls (test accuracy)", header, rows, note)


def course_table(groups: list[Group]) -> Table:
    """The course slides' form: method, network, dataset, baseline and pruned accuracy, params left and removed."""
    header = ["method", "run", "network", "dataset", "baseline %", "pruned %", "params (M)", "params pruned %"]
    rows = []
    for g in groups:
        curve = g.curve()
        dense, final = (curve[0][2]["params"], curve[-1][2]["params"]) if curve else (None, None)
        removed = Stat(1 - final.mean / dense.mean, 0, 1) if dense and final and dense.mean else None
        rows.append(
            [
                g.first.method_label,
                g.legend,
                g.first.model,
                g.first.dataset,
                pct_stat(g.stat(lambda r: r.dense_accuracy)),
                pct_stat(g.stat(lambda r: r.final_accuracy)),
                num_stat(final and Stat(final.mean / 1e6, final.std / 1e6, final.n), "{:.3f}"),
                pct(removed and removed.mean, 1),
            ]
        )
    return Table(
        "Baseline vs pruned",
        header,
        rows,
        "params: parameters left (nonzero, or physically present for channel pruning) in the final network",
    )


def method_table(groups: list[Group]) -> Table:
    """The AIMP poster's form: method -> accuracy."""
    header = ["method", "run", "final acc %", "best acc %", "max sparsity within 1 pt %", "final sparsity %"]
    rows = [
        [
            g.first.method_label,
            g.legend,
            pct_stat(g.stat(lambda r: r.final_accuracy)),
            pct_stat(g.stat(lambda r: r.best_accuracy)),
            pct_stat(g.stat(lambda r: r.highest_within())),
            pct_stat(g.stat(lambda r: r.final_sparsity)),
        ]
        for g in groups
    ]
    return Table("Accuracy by method", header, rows)


def cost_table(groups: list[Group], speedups: dict[str, tuple[Group, Stat | None, Stat | None]]) -> Table:
    header = ["run", "method", "epochs", "wall s", "speedup vs IMP (wall)", "epoch ratio IMP/AIMP", "IMP run compared"]
    rows = []
    for g in groups:
        imp, wall, epochs = speedups.get(g.label, (None, None, None))
        rows.append(
            [
                g.legend,
                g.first.method_label,
                num_stat(g.stat(lambda r: r.epochs)),
                num_stat(g.stat(lambda r: r.wall_seconds), "{:.1f}"),
                num_stat(wall, "{:.2f}x"),
                num_stat(epochs, "{:.2f}x"),
                imp.legend if imp else "",
            ]
        )
    note = (
        "AIMP speedup = IMP wall time / AIMP wall time, beside the same ratio of "
        "epochs, against the IMP run on the same model and dataset whose config differs least"
    )
    table = Table("Cost", header, rows, note if speedups else "").without_empty_columns()
    return table
