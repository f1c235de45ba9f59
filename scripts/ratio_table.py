"""Print the Markdown table comparing per-layer ratio sources (uniform, sensitivity, AMC) at one budget.

Reads the run directories the commands in docs/results/learned_ratios.md write:
    PREFIX_amc_sS            the AMC run (its round 1: AMC's ratios, fine-tuned)
    PREFIX_KIND_ftN_sS       ratios from a file, fine-tuned N epochs (KIND: uniform | sens | amc)
and prints, per ratio source, the FLOPs and parameters kept and the test accuracy without and with fine-tuning,
mean ± sample std over the seeds (`prunekit.common.stats.mean_std`), with every seed's value. With --widths, also the
kept width of every channel group of each fine-tuned network (read from its last checkpoint; --input gives the
example input shape).

    python scripts/ratio_table.py runs/learned/lenet5 --seeds 0 1 2 --ft 3
    python scripts/ratio_table.py runs/learned/resnet20_mnist --seeds 0 --ft 1 --widths
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prunekit.common.stats import mean_std


def final(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    dense, last = summary["rounds"][0], summary["rounds"][-1]
    return {
        "acc": last["test_accuracy"],
        "dense": dense["test_accuracy"],
        "flops": last["flops"] / dense["flops"],
        "params": last["params"],
    }


def widths(run: Path, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Kept width of every channel group of the run's last finished round, by group name."""
    import torch

    from prunekit.inspection import round_model
    from prunekit.pruning.structured import group_widths

    model, _, _ = round_model(run, None)
    return group_widths(model, (), torch.zeros(1, *input_shape))


def cell(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    mean, spread = (v * scale for v in mean_std(values))
    each = " / ".join(f"{v * scale:.{digits}f}" for v in values)
    return f"{mean:.{digits}f} ± {spread:.{digits}f} ({each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", type=Path)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ft", type=int, default=3, help="fine-tuning epochs of the ratio runs")
    parser.add_argument("--widths", action="store_true", help="also list each fine-tuned network's group widths")
    parser.add_argument("--input", type=int, nargs="+", default=[1, 28, 28], help="example input shape (C H W)")
    args = parser.parse_args()
    p = args.prefix
    kept: list[str] = []
    print("| ratios | FLOPs kept | params | test acc. %, no fine-tuning | test acc. %, fine-tuned |")
    print("|---|---|---:|---|---|")
    for kind, label in (("uniform", "uniform"), ("sens", "sensitivity"), ("amc", "AMC")):
        no_ft = [final(Path(f"{p}_{kind}_ft0_s{s}")) for s in args.seeds]
        tuned_dirs = [
            Path(f"{p}_amc_s{s}") if kind == "amc" else Path(f"{p}_{kind}_ft{args.ft}_s{s}") for s in args.seeds
        ]
        tuned = [final(d) for d in tuned_dirs]
        flops = " / ".join(f"{r['flops']:.5f}" for r in tuned)
        params = " / ".join(f"{r['params']:,}" for r in tuned)
        print(
            f"| {label} | {flops} | {params} | {cell([r['acc'] for r in no_ft])} | {cell([r['acc'] for r in tuned])} |"
        )
        if args.widths:
            for s, d in zip(args.seeds, tuned_dirs, strict=True):
                w = widths(d, tuple(args.input))
                kept.append(f"{label}, seed {s}: " + "/".join(str(v) for v in w.values()) + f" ({', '.join(w)})")
    dense = [final(Path(f"{p}_amc_s{s}"))["dense"] for s in args.seeds]
    print(f"\ndense: {cell(dense)}")
    for line in kept:
        print(f"\nkept channels, {line}")


if __name__ == "__main__":
    main()
