"""Prune the small GPT trained by scripts/train_gpt.py with magnitude, Wanda and SparseGPT; perplexity on held-out
stdlib bytes and pruning time, over several calibration draws; optionally a perplexity-vs-sparsity figure.

    nice -n 10 .venv/bin/python scripts/prune_gpt.py runs/llm/gpt.safetensors --out runs/llm/prune.json \
        --figure docs/reports/llm_pruning/perplexity_vs_sparsity.png

Every pruning starts from the trained file. Magnitude prunes each layer to the target by |w| (layer-wise, as the
Wanda paper's baseline); Wanda and SparseGPT calibrate on `--calibration` windows drawn from the training split
(draw k uses seed k), block by block. Magnitude uses no data, so one run stands for all draws.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import prunekit
import prunekit.export
from prunekit.common.stats import mean_std
from prunekit.config import DataConfig
from prunekit.data import load_dataset
from prunekit.tasks.metrics import perplexity


def token_batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


SETTINGS = [("unstructured", 0.5), ("2:4", 0.5), ("4:8", 0.5)]
CRITERIA = ["magnitude", "wanda", "sparsegpt"]


def calibration(data, count: int, seed: int, batch: int = 16) -> list:
    idx = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(seed))[:count]
    return token_batches(data.train_x[idx], data.train_y[idx], batch)


def prune_once(path: Path, criterion: str, sparsity: float, pattern: str, batches: list) -> tuple[object, float]:
    model = prunekit.load(path)
    start = time.perf_counter()
    prunekit.prune(model, sparsity, criterion=criterion, batches=batches, pattern=pattern, scope="layerwise")
    return model, time.perf_counter() - start


def summary(values: list[float]) -> dict[str, float]:
    mean, std = mean_std(values)
    return {"mean": mean, "std": std}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=128, help="calibration sequences per draw")
    parser.add_argument("--eval-windows", type=int, default=256, help="test windows for perplexity")
    parser.add_argument("--max-bytes", type=int, default=4_000_000)
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--sweep", type=float, nargs="*", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = prunekit.load(args.model)
    seq_len = int(model.arch["input_shape"][0])
    data = load_dataset(DataConfig(name="pystdlib", seq_len=seq_len, max_bytes=args.max_bytes), 0)
    test = token_batches(data.test_x[: args.eval_windows], data.test_y[: args.eval_windows], 64)
    results = {"dense": perplexity(model, test), "eval_tokens": sum(y.numel() for _, y in test), "rows": []}
    print(f"dense perplexity {results['dense']:.3f} on {results['eval_tokens']} test tokens", flush=True)
    for pattern, sparsity in SETTINGS:
        ppls: dict[str, list[float]] = {c: [] for c in CRITERIA}
        seconds: dict[str, list[float]] = {c: [] for c in CRITERIA}
        for draw in range(args.draws):  # criteria interleaved within a draw: machine load hits them alike
            batches = calibration(data, args.calibration, draw)
            for criterion in CRITERIA if draw == 0 else CRITERIA[1:]:  # magnitude uses no data: one run
                pruned, took = prune_once(args.model, criterion, sparsity, pattern, batches)
                ppls[criterion].append(perplexity(pruned, test))
                seconds[criterion].append(took)
                print(
                    f"{pattern:>12} {criterion:>9} draw {draw}: ppl {ppls[criterion][-1]:.3f}  {took:.2f} s", flush=True
                )
        for criterion in CRITERIA:
            row = {"pattern": pattern, "sparsity": sparsity, "criterion": criterion, "draws": len(ppls[criterion])}
            stats = {"ppl": summary(ppls[criterion]), "seconds": summary(seconds[criterion]), "all": ppls[criterion]}
            results["rows"].append({**row, **stats})
    results["files"] = file_sizes(args, data, args.out.parent)
    if args.figure is not None:
        results["sweep"] = sweep(args, data, test)
        figure(results, args.figure)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


def file_sizes(args, data, folder: Path) -> dict[str, int]:
    """Bytes of the 2:4 SparseGPT model (draw 0) as dense and sparse fp16 files; the sparse one stores N:M codes."""
    model, _ = prune_once(args.model, "sparsegpt", 0.5, "2:4", calibration(data, args.calibration, 0))
    masks = prunekit.export.zero_masks(model)
    dense = prunekit.save(model, folder / "gpt_2_4_dense.safetensors", dtype="float16")
    sparse = prunekit.save(model, folder / "gpt_2_4_sparse.safetensors", format="sparse", masks=masks, dtype="float16")
    linear = sum(m.numel() for m in masks.values())
    return {"dense_fp16": dense.stat().st_size, "sparse_fp16": sparse.stat().st_size, "linear_weights": linear}


def sweep(args, data, test) -> list[dict]:
    """Unstructured perplexity at several sparsities, calibration draw 0."""
    rows = []
    for sparsity in args.sweep:
        for criterion in CRITERIA:
            pruned, took = prune_once(
                args.model, criterion, sparsity, "unstructured", calibration(data, args.calibration, 0)
            )
            rows.append(
                {"sparsity": sparsity, "criterion": criterion, "ppl": perplexity(pruned, test), "seconds": took}
            )
            print(f"sweep {sparsity:.2f} {criterion:>9}: ppl {rows[-1]['ppl']:.3f}", flush=True)
    return rows


def figure(results: dict, path: Path) -> None:
    """Perplexity vs sparsity of the sweep (also: `python -c "...figure(json.load(open(out)), path)"` to redraw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for criterion in CRITERIA:
        rows = [r for r in results["sweep"] if r["criterion"] == criterion]
        ax.plot([100 * r["sparsity"] for r in rows], [r["ppl"] for r in rows], marker="o", label=criterion)
    ax.axhline(results["dense"], color="gray", linestyle="--", label="dense")
    ax.set_xlabel("sparsity of every block Linear (%)")
    ax.set_ylabel("test perplexity (bytes)")
    ax.set_title("Small GPT, stdlib bytes: one-shot, no retraining", fontsize=10)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
