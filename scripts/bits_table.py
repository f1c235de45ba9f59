"""Print the Markdown table of BitPruning runs: the learned bits of every layer, mean bits per layer, bits per
weight, the weights quantised to 0, test accuracy, and the size a packed file of the covered weights would take.

    python scripts/bits_table.py runs/learned/lenet300_bp_0.001 runs/learned/lenet300_bp_0.01 ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prunekit import run_summary
from prunekit.safe_text import load_yaml


def row(run: Path) -> list[str]:
    summary = run_summary.load(run)
    prune = (load_yaml(run / "config.yaml") or {}).get("prune", {})
    dense, last = summary["rounds"][0], summary["rounds"][-1]
    layers = summary["layers"]
    weights = sum(layer["numel"] for layer in layers)
    packed = sum(layer["bits"] * layer["numel"] for layer in layers) / 8
    setting = (
        f"uniform {prune['bits_init']}"
        if prune.get("bits_init") == prune.get("bits_min")
        else f"{prune['bit_penalty']:g}{' weighted' if prune.get('bits_weighted') else ''}"
    )
    return [
        setting,
        " / ".join(str(layer["bits"]) for layer in layers),
        f"{last['mean_bits']:.2f}",
        f"{last['bits_per_weight']:.2f}",
        f"{last['sparsity']:.1%}",
        f"{last['test_accuracy']:.2%}".rstrip("%"),
        f"{last['test_accuracy'] - dense['test_accuracy']:+.2%}".rstrip("%"),
        f"{packed / 1024:.1f} KiB ({packed / (4 * weights):.3f}x)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    header = ["lambda", "bits per layer", "mean bits", "bits per weight", "weights at 0", "test acc. %", "vs dense"]
    header.append("packed weights (vs float32)")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for run in args.runs:
        print("| " + " | ".join(row(run)) + " |")


if __name__ == "__main__":
    main()
