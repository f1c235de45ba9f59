"""Summarise AMC runs (RUN_DIR/amc_search.json + summary.json) as the Markdown rows of docs/results/learned_ratios.md:
per seed the kept widths, FLOPs kept, parameters, accuracy without fine-tuning (the policy applied without the
refit) and after it, the best episode and its reward accuracy (after the least-squares refit), and the reward's
spread over the warm-up and the learned phase; then mean ± sample std over the seeds.

    python scripts/amc_summary.py runs/learned/lenet5_amc_s0 runs/learned/lenet5_amc_s1 runs/learned/lenet5_amc_s2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prunekit.common.stats import mean_std


def one(run: Path) -> dict:
    log = json.loads((run / "amc_search.json").read_text())
    rounds = json.loads((run / "summary.json").read_text())["rounds"]
    dense, pruned = rounds[0], rounds[-1]
    r = log["rewards"]
    return {
        "run": run.name,
        "kept": "/".join(map(str, log["best"]["kept"])),
        "flops": pruned["flops"] / dense["flops"],
        "params": pruned["params"],
        "dense": dense["test_accuracy"],
        "no_ft": pruned.get("pruned_accuracy"),
        "ft": pruned["test_accuracy"] if pruned.get("epochs") else None,
        "best_episode": log["best"]["episode"],
        "best_reward_acc": log["best"]["accuracy"],
        "from": r["best_from"],
        "warmup": r["warmup"],
        "learned": r["learned"],
        "seconds": log["search_seconds"],
        "refit": log.get("refit"),
    }


def cell(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    mean, std = mean_std([100 * v for v in present])
    each = " / ".join("-" if v is None else f"{100 * v:.2f}" for v in values)
    return f"{mean:.2f} ± {std:.2f} ({each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    rows = [one(r) for r in parser.parse_args().runs]
    for r in rows:
        w, ln = r["warmup"], r["learned"]
        no_ft = "-" if r["no_ft"] is None else f"{100 * r['no_ft']:.2f}"
        ft = "-" if r["ft"] is None else f"{100 * r['ft']:.2f}"
        print(
            f"{r['run']}: kept {r['kept']}, FLOPs {r['flops']:.5f}, params {r['params']:,}, "
            f"dense {100 * r['dense']:.2f}, no fine-tuning {no_ft}, fine-tuned {ft}; best episode {r['best_episode']} "
            f"({r['from']}), reward accuracy {100 * r['best_reward_acc']:.2f}; reward warm-up {w['mean']:.4f} ± "
            f"{w['std']:.4f} [{w['min']:.4f}, {w['max']:.4f}], learned {ln['mean']:.4f} ± {ln['std']:.4f} "
            f"[{ln['min']:.4f}, {ln['max']:.4f}]; search {r['seconds']:.0f} s"
        )
    print("dense", cell([r["dense"] for r in rows]))
    print("no fine-tuning", cell([r["no_ft"] for r in rows]))
    print("fine-tuned", cell([r["ft"] for r in rows]))
    print("best reward accuracy (refit)", cell([r["best_reward_acc"] for r in rows]))


if __name__ == "__main__":
    main()
