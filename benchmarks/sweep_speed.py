"""A local sweep with 2 workers against the same runs one after another, side by side, interleaved.

The same `--runs` runs (LeNet-300-100, seeds 0..runs-1, IMP for 2 rounds on synthetic 28x28 data, `threads: 1` in
the config) are run by `prunekit sweep` into fresh directories one after another (`--workers 1`) and 2 at a time
(`--workers 2`); the results are bit-identical, only the wall time differs. `--two-threads` adds the same runs one
after another with 2 torch threads each (threads: null, so the single worker gets both cores). Wall time of the
whole command, median over `--repeats`. Prints JSON with the ratios parallel / one after another (the target: at
most 0.6 with 2 workers on 2 cores).

    python benchmarks/sweep_speed.py [--runs 4] [--examples 8192] [--repeats 2] [--two-threads] [--json]
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
    """The sweep of `args.runs` seeds, with `threads` in its base config."""
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
    parser.add_argument("--examples", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--two-threads", action="store_true", help="also one after another with 2 threads each")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "prunekit", "sweep"]
    variants = [("one after another", None, "seq", "1"), ("2 workers", None, "par", "2")]
    variants += [("one after another, 2 threads", "free", "seq2", "1")] if args.two_threads else []
    times: dict[str, list[float]] = {name: [] for name, *_ in variants}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        files = {None: sweep_file(tmp_path, args, 1), "free": sweep_file(tmp_path, args, None)}
        for i in range(args.repeats):
            for name, which, where, workers in variants:
                out = tmp_path / str(i) / where
                times[name].append(timed([*cli, str(files[which]), "--out", str(out), "--workers", workers]))
                loads.append(os.getloadavg()[0])
    medians = {k: statistics.median(v) for k, v in times.items()}
    par = medians["2 workers"]
    out = {
        "runs": args.runs,
        "load_average_1min": [round(x, 1) for x in loads],
        "wall_seconds": {k: [round(t, 1) for t in v] for k, v in times.items()},
        "ratio_2workers_vs_one_after_another": round(par / medians["one after another"], 3),
    }
    if args.two_threads:
        out["ratio_2workers_vs_one_after_another_2threads"] = round(par / medians["one after another, 2 threads"], 3)
    print(json.dumps(out, indent=1) if args.json else out)


if __name__ == "__main__":
    main()
