"""Markdown tables in the forms the source documents use."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _md(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def highest_within(summary: dict[str, Any], points: float = 1.0) -> float | None:
    """The highest sparsity whose accuracy is within `points` percentage points of the dense accuracy."""
    dense = summary.get("dense_accuracy")
    ok = [r["sparsity"] for r in summary["rounds"] if dense is not None and r["test_accuracy"] >= dense - points / 100]
    return max(ok) if ok else None


def runs_table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    header = ["run", "model", "method", "dense acc %", "final sparsity %", "final acc %", "best acc %",
              "max sparsity within 1 pt %", "epochs", "wall s"]
    rows = []
    for label, s in runs:
        best = max((r["test_accuracy"] for r in s["rounds"][1:]), default=None)
        rows.append([label, s["model"], s["method"], _pct(s["dense_accuracy"]), _pct(s["final_sparsity"]),
                     _pct(s["final_accuracy"]), _pct(best), _pct(highest_within(s)), str(s["total_epochs"]),
                     f"{s['wall_seconds']:.0f}"])
    return _md(header, rows)


def rounds_table(summary: dict[str, Any]) -> str:
    header = ["round", "sparsity %", "weights left %", "test acc %", "epochs", "wall s", "params", "MFLOPs"]
    rows = [[str(r["round"]), _pct(r["sparsity"]), _pct(1 - r["sparsity"]), _pct(r["test_accuracy"]),
             str(r["epochs"]), f"{r['wall_seconds']:.1f}", f"{r['params']:,}", f"{r['flops'] / 1e6:.3f}"]
            for r in summary["rounds"]]
    return _md(header, rows)


def layers_table(summary: dict[str, Any]) -> str:
    header = ["tensor", "shape", "numel", "sparsity %", "units with no input %"]
    rows = [[layer["name"], "x".join(map(str, layer["shape"])), f"{layer['numel']:,}", _pct(layer["sparsity"]),
             _pct(layer["units_pruned"])] for layer in summary["layers"]]
    return _md(header, rows)
