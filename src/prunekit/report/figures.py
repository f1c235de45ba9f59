"""Figures, drawn with matplotlib's Agg backend so they render without a display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = plt.get_cmap("tab10").colors


def accuracy_vs_remaining(runs: list[tuple[str, dict[str, Any]]], path: Path) -> Path:
    """Test accuracy against the percentage of weights remaining, log scale as in the lottery-ticket papers."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, summary) in enumerate(runs):
        rounds = summary["rounds"]
        color = COLORS[i % len(COLORS)]
        x = [max(100 * (1 - r["sparsity"]), 1e-3) for r in rounds]
        y = [100 * r["test_accuracy"] for r in rounds]
        ax.plot(x, y, marker="o", ms=4, color=color, label=label)
        if summary.get("dense_accuracy") is not None:
            ax.axhline(100 * summary["dense_accuracy"], color=color, ls=":", lw=1)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs weights remaining (dotted: dense accuracy)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def layer_sparsity(label: str, summary: dict[str, Any], path: Path) -> Path:
    """Per-tensor sparsity and the fraction of output units left with no incoming weight."""
    layers = summary["layers"]
    names = [layer["name"].removesuffix(".weight") for layer in layers]
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(names) + 2), 4))
    pos = range(len(names))
    ax.bar([p - 0.2 for p in pos], [100 * layer["sparsity"] for layer in layers], 0.4, label="weights pruned")
    ax.bar([p + 0.2 for p in pos], [100 * layer["units_pruned"] for layer in layers], 0.4, label="units with no input")
    ax.set_xticks(list(pos), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.set_title(f"{label}: final network, per layer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
