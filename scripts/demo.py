"""make demo: LeNet-300-100 on the bundled MNIST, one-shot vs IMP (weight rewinding) vs Accelerated IMP, side by side.

Runs the three configs in configs/demo/ (each resumable: run `make demo` again after an interrupt), writes one
comparison report, and prints the accuracy-vs-sparsity table and the cost of each method.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import prunekit
from prunekit.report import write_report

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["dense_oneshot", "imp_wr", "aimp"]


def main() -> int:
    out = ROOT / "runs" / "demo"
    start = time.perf_counter()
    summaries = {}
    for name in CONFIGS:
        print(f"== {name} ==", file=sys.stderr, flush=True)
        summaries[name] = prunekit.run(ROOT / "configs" / "demo" / f"{name}.yaml", out / name)
    report = write_report(
        [out / name for name in CONFIGS], out / "report", title="prunekit demo: LeNet-300-100 on MNIST"
    )
    print("\nweights left %  " + "  ".join(f"{n:>14}" for n in CONFIGS))
    rows = {
        n: {round(100 * (1 - r["sparsity"]), 1): r["test_accuracy"] for r in s["rounds"]} for n, s in summaries.items()
    }
    for left in sorted({k for r in rows.values() for k in r}, reverse=True):
        cells = [f"{100 * rows[n][left]:13.2f}%" if left in rows[n] else f"{'':>14}" for n in CONFIGS]
        print(f"{left:>14}  " + "  ".join(cells))
    print("\nmethod          final sparsity  final acc  epochs  wall s")
    for n, s in summaries.items():
        print(
            f"{n:<15} {100 * s['final_sparsity']:>13.2f}% {100 * s['final_accuracy']:>9.2f}% "
            f"{s['total_epochs']:>7} {s['wall_seconds']:>7.1f}"
        )
    imp, aimp = summaries["imp_wr"], summaries["aimp"]
    print(
        f"\nAIMP vs IMP: {imp['total_epochs'] / aimp['total_epochs']:.2f}x fewer epochs, "
        f"{imp['wall_seconds'] / aimp['wall_seconds']:.2f}x less wall time, accuracy "
        f"{100 * (aimp['final_accuracy'] - imp['final_accuracy']):+.2f} points at the same sparsity"
    )
    print(
        f"\nreport: {report.with_suffix('.html')}  (runs in {out}; this demo took {time.perf_counter() - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except prunekit.UserError as e:
        print(f"prunekit: error: {e}", file=sys.stderr)
        sys.exit(2)
