"""Print the Markdown table of BitPruning runs: the learned bits of every layer, mean bits per layer, bits per
weight, the weights quantised to 0, test accuracy, and the size of the run's last round written as a sparse file
(weights as b-bit codes, `prunekit export --format sparse`) beside its dense float32 file, both measured.

    python scripts/bits_table.py runs/learned/lenet300_bp_0.001 runs/learned/lenet300_bp_0.01 ...
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from prunekit.common.safe_text import load_yaml
from prunekit.inspection import export_file
from prunekit.store import summary as run_summary


def row(run: Path) -> list[str]:
    summary = run_summary.load(run)
    prune = (load_yaml(run / "config.yaml") or {}).get("prune", {})
    first, last = summary["rounds"][0], summary["rounds"][-1]
    layers = summary["layers"]
    with tempfile.TemporaryDirectory() as tmp:
        sparse = export_file(run, None, "sparse", Path(tmp) / "s.safetensors").stat().st_size
        dense = export_file(run, None, "dense", Path(tmp) / "d.safetensors").stat().st_size
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
        f"{last['test_accuracy'] - first['test_accuracy']:+.2%}".rstrip("%"),
        f"{sparse:,} ({sparse / dense:.3f}x)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    header = ["lambda", "bits per layer", "mean bits", "bits per weight", "weights at 0", "test acc. %", "vs dense"]
    header.append("sparse file, bytes (vs dense float32)")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for run in args.runs:
        print("| " + " | ".join(row(run)) + " |")


if __name__ == "__main__":
    main()
