"""Post-training pruning of SmolLM2-135M (`make smollm2` first): held-out perplexity and pruning time of magnitude,
Wanda and SparseGPT at 50% unstructured, 2:4 and 4:8, and of OWL beside uniform at 50% and 70%.

    nice -n 10 python scripts/prune_smollm2.py --out runs/smollm2/table.json

Every row starts from the dense model (its weights restored from memory), prunes every Linear of the 30 decoder
blocks (210 tensors; the embedding and the tied output head are not pruned) with prunekit.prune from the same
calibration windows (the prose calibration split, `--calib` windows of `--seq-len` tokens), then scores perplexity on
the first `--eval-windows` non-overlapping windows of the prose test split (exp of the mean NLL of the seq-len - 1
predictions in each window). Rows are written to --out as they finish; a rerun skips the rows already there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import prunekit
from prunekit.data import prose
from prunekit.models import create_model
from prunekit.tasks.metrics import perplexity

# (label, criterion, sparsity, pattern, allocation, calibration)
ROWS = [  # in the order they run: the rows the comparisons need first
    ("dense", None, 0.0, "unstructured", "uniform", "block"),
    ("magnitude 50%", "magnitude", 0.5, "unstructured", "uniform", "block"),
    ("wanda 50%", "wanda", 0.5, "unstructured", "uniform", "block"),
    ("sparsegpt 50%", "sparsegpt", 0.5, "unstructured", "uniform", "block"),
    ("wanda 70%", "wanda", 0.7, "unstructured", "uniform", "block"),
    ("owl+wanda 70%", "wanda", 0.7, "unstructured", "owl", "block"),
    ("magnitude 2:4", "magnitude", 0.5, "2:4", "uniform", "block"),
    ("wanda 2:4", "wanda", 0.5, "2:4", "uniform", "block"),
    ("sparsegpt 2:4", "sparsegpt", 0.5, "2:4", "uniform", "block"),
    ("sparsegpt 70%", "sparsegpt", 0.7, "unstructured", "uniform", "block"),
    ("owl+sparsegpt 70%", "sparsegpt", 0.7, "unstructured", "owl", "block"),
    ("owl+wanda 50%", "wanda", 0.5, "unstructured", "owl", "block"),
    ("owl+sparsegpt 50%", "sparsegpt", 0.5, "unstructured", "owl", "block"),
    ("magnitude 4:8", "magnitude", 0.5, "4:8", "uniform", "block"),
    ("wanda 4:8", "wanda", 0.5, "4:8", "uniform", "block"),
    ("sparsegpt 4:8", "sparsegpt", 0.5, "4:8", "uniform", "block"),
    ("wanda 50% sequential", "wanda", 0.5, "unstructured", "uniform", "sequential"),
    ("sparsegpt 50% sequential", "sparsegpt", 0.5, "unstructured", "uniform", "sequential"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calib", type=int, default=8, help="calibration windows")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--eval-windows", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", help="comma-separated row labels, run in that order (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        model = create_model("smollm2_135m", prose.VOCAB, (args.seq_len,)).eval()
    except prunekit.UserError as exc:
        print(f"prune_smollm2: error: {exc}", file=sys.stderr)
        return 2
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    calib = prose.calibration_windows(args.seq_len, args.calib)
    batches = [(calib[i : i + args.batch], None) for i in range(0, len(calib), args.batch)]
    x, y = prose.windows(prose.token_splits()["test"], args.seq_len, "prose test")
    x, y = x[: args.eval_windows], y[: args.eval_windows]
    evaluation = [(x[i : i + args.batch], y[i : i + args.batch]) for i in range(0, len(x), args.batch)]
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    done["protocol"] = {
        "calibration": f"{len(calib)} x {args.seq_len} tokens (prose calibration split)",
        "evaluation": f"{len(x)} x {args.seq_len} tokens, {int((y != -100).sum())} predictions (prose test split)",
        "threads": args.threads,
    }
    labels = {r["label"] for r in done["rows"]}
    wanted = args.only.split(",") if args.only else None
    unknown = set(wanted or ()) - {row[0] for row in ROWS}
    if unknown:
        parser.error(f"--only: unknown rows {sorted(unknown)}")
    order = sorted(ROWS, key=lambda row: wanted.index(row[0]) if row[0] in wanted else len(wanted)) if wanted else ROWS
    for label, criterion, sparsity, pattern, allocation, calibration in order:  # --only: in the order given
        if label in labels or (wanted and label not in wanted):
            continue
        model.load_state_dict(dense)
        wall, cpu = time.perf_counter(), time.process_time()
        report = None
        if criterion is not None:
            masks = prunekit.prune(
                model,
                sparsity,
                criterion=criterion,
                scope="layerwise",  # magnitude per layer, as the papers' baseline; wanda/sparsegpt are per layer anyway
                batches=batches if criterion != "magnitude" else None,
                pattern=pattern,
                allocation=allocation,
                calibration=calibration,
            )
            report = masks.report
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ppl = perplexity(model, evaluation)
        row = {
            "label": label,
            "perplexity": round(ppl, 3),
            "sparsity": round(report.sparsity, 4) if report else 0.0,
            "tensors": len(report.coverage.tensors) if report else 0,
            "prune_wall_s": round(wall, 1),
            "prune_cpu_s": round(cpu, 1),
        }
        done["rows"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(done, indent=1))
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
