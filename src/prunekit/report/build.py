"""Collect run summaries and write report.md with its figures, for one run or a comparison of several."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prunekit.errors import UserError
from prunekit.export.safety import atomic_write_text
from prunekit.report import figures, tables


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no summary.json)")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None


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


def write_report(run_dirs: list[Path], out: Path, title: str = "prunekit report") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    runs = [(_label(d, run_dirs), load_summary(d)) for d in run_dirs]
    lines = [f"# {title}", ""]
    figures.accuracy_vs_remaining(runs, out / "accuracy_vs_sparsity.png")
    lines += ["![accuracy vs weights remaining](accuracy_vs_sparsity.png)", ""]
    lines += ["## Runs", "", tables.runs_table(runs), ""]
    for label, summary in runs:
        lines += [f"## {label}", "", tables.rounds_table(summary), ""]
        if summary.get("layers"):
            name = f"layers_{_slug(label)}.png"
            figures.layer_sparsity(label, summary, out / name)
            lines += [f"![per-layer sparsity of {label}]({name})", "", tables.layers_table(summary), ""]
    return atomic_write_text(out / "report.md", "\n".join(lines))


def write_run_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return write_report([run_dir], run_dir, title=f"{load_summary(run_dir)['name']}: {run_dir}")


def _label(run_dir: Path, all_dirs: list[Path]) -> str:
    summary_name = load_summary(run_dir).get("name")
    return summary_name if len(all_dirs) == 1 else f"{summary_name} ({Path(run_dir).name})"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
