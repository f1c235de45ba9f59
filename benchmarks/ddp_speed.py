"""One epoch on two processes (torchrun, gloo, one thread each) against one process on the same work.

The same global batches of the same epochs (prunekit's TensorTask, `train.batch_size` is the global batch) are
trained by 1 process with 1 thread, 1 process with 2 threads (the whole machine) and 2 processes with 1 thread each,
launched interleaved, `--repeats` times; each launch times `--epochs` epochs and the first is dropped as warm-up.
Prints JSON: median seconds per epoch and the ratios (2 processes / 1 process; below 1 is faster).

    python benchmarks/ddp_speed.py [--model lenet_300_100] [--examples 12000] [--batch 60] [--repeats 3] [--json]
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

VARIANTS = {"1 process, 1 thread": (1, 1), "1 process, 2 threads": (1, 2), "2 processes, 1 thread each": (2, 1)}


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from prunekit.config import DataConfig, TrainConfig
    from prunekit.data import load_dataset
    from prunekit.tasks import TensorTask
    from prunekit.train.optim import make_optimizer

    torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    shape = tuple(int(s) for s in args.shape.split(","))
    data = load_dataset(DataConfig(name="synthetic", shape=shape, train_size=args.examples, test_size=64), 0)
    task = TensorTask(data, args.model)
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = make_optimizer(model.parameters(), TrainConfig(lr=1e-3))
    seconds = []
    for epoch in range(args.epochs):
        began = time.perf_counter()
        task.train_epoch(
            model,
            optimizer,
            batch_size=args.batch,
            lr_at=lambda _: 1e-3,
            epoch=epoch,
            generator=torch.Generator().manual_seed(epoch),
        )
        seconds.append(time.perf_counter() - began)
    if not dist.is_initialized() or dist.get_rank() == 0:
        Path(args.result).write_text(json.dumps(seconds))
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(args: argparse.Namespace, procs: int, threads: int, result: Path) -> list[float]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", __file__]
    command += ["--worker", "--threads", str(threads), "--result", str(result), "--model", args.model]
    command += ["--shape", args.shape, "--examples", str(args.examples), "--batch", str(args.batch)]
    command += ["--epochs", str(args.epochs)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, env=env, check=True, capture_output=True)
    return json.loads(result.read_text())[1:]  # the first epoch warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet_300_100")
    parser.add_argument("--shape", default="1,28,28")
    parser.add_argument("--examples", type=int, default=12000)
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, (procs, threads) in VARIANTS.items():
                times[name] += launch(args, procs, threads, Path(tmp) / "result.json")
    medians = {name: statistics.median(t) for name, t in times.items()}
    two = medians["2 processes, 1 thread each"]
    out = {
        "model": args.model,
        "examples": args.examples,
        "global_batch": args.batch,
        "load_average_1min": os.getloadavg()[0],
        "seconds_per_epoch": {k: round(v, 3) for k, v in medians.items()},
        "ratio_2proc_vs_1proc_1thread": round(two / medians["1 process, 1 thread"], 3),
        "ratio_2proc_vs_1proc_2threads": round(two / medians["1 process, 2 threads"], 3),
    }
    print(json.dumps(out, indent=1) if args.json else out)


if __name__ == "__main__":
    main()
