"""A local sweep with 2 workers against the same runs one after another, side by side, interleaved.

The same 4 runs (LeNet-300-100, seeds 0-3, IMP for 2 rounds on synthetic 28x28 data) are run by `prunekit sweep`
three ways into fresh directories: one after another with 2 torch threads each (`--workers 1`: the whole machine
per run), one after another with 1 thread each (the config sets threads: 1, as the parallel runs get), and 2 at a
time with 1 thread each (`--workers 2`). Wall time of the whole command, median over `--repeats`. Prints JSON with
the ratios parallel / one-after-another (the target: at most 0.6 with 2 workers on 2 cores).

    python benchmarks/sweep_speed.py [--runs 4] [--examples 16384] [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def sweep_file(tmp: Path, args: argparse.Namespace, threads: int | None) -> Path:
    base = {
        "model": {"name": "lenet_300_100"},
        "data": {"name": "synthetic", "shape": [1, 28, 28], "train_size": args.examples, "test_size": 512},
        "train": {"epochs": args.epochs, "batch_size": 60},
        "prune": {"method": "imp", "rounds": 2},
        "threads": threads,
    }
    path = tmp / f"sweep_{threads}.yaml"
    path.write_text(yaml.safe_dump({"name": "bench", "base": base, "seeds": list(range(args.runs))}))
    return path


def timed(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--examples", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "prunekit", "sweep"]
    times: dict[str, list[float]] = {"sequential, 2 threads": [], "sequential, 1 thread": [], "2 workers": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        free, single = sweep_file(tmp_path, args, None), sweep_file(tmp_path, args, 1)
        for i in range(args.repeats):
            out = tmp_path / str(i)
            for name, path, where, workers in (
                ("sequential, 2 threads", free, "seq2", "1"),
                ("sequential, 1 thread", single, "seq1", "1"),
                ("2 workers", free, "par", "2"),
            ):
                times[name].append(timed([*cli, str(path), "--out", str(out / where), "--workers", workers]))
    medians = {k: statistics.median(v) for k, v in times.items()}
    par = medians["2 workers"]
    out = {
        "runs": args.runs,
        "load_average_1min": os.getloadavg()[0],
        "wall_seconds": {k: [round(t, 1) for t in v] for k, v in times.items()},
        "ratio_2workers_vs_sequential_2threads": round(par / medians["sequential, 2 threads"], 3),
        "ratio_2workers_vs_sequential_1thread": round(par / medians["sequential, 1 thread"], 3),
    }
    print(json.dumps(out, indent=1) if args.json else out)


if __name__ == "__main__":
    main()
