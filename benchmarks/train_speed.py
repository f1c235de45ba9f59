"""Training speed side by side: a minimal hand-written PyTorch loop vs prunekit's loop, dense and masked.

Measures, in one process and interleaved (this machine is shared and noisy): seconds per epoch of
  minimal   - the shortest correct loop over the same in-memory tensors (randperm, slice, step),
  dense     - prunekit.train.loop.train_epoch on the dense network,
  masked    - the same at 90% sparsity with the MaskEnforcer hook keeping pruned weights at zero,
  loader    - with --loader: the DataLoader path (`data.loader: true`): the runner's LoaderTask epoch over a torch
              DataLoader of the same tensors (per-sample indexing and collation, what data that does not fit in
              memory goes through),
and prints JSON with the medians and the ratios dense/minimal, masked/dense (and loader/dense).

    python benchmarks/train_speed.py [--model lenet_300_100] [--repeats 5] [--steps 300] [--loader] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from prunekit.config import TrainConfig
from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import ScoreContext, magnitude
from prunekit.pruning.masks import MaskEnforcer, apply_masks, dense_masks, prunable_names
from prunekit.train.loop import train_epoch
from prunekit.train.optim import make_optimizer


def minimal_epoch(model, optimizer, x, y, batch_size, generator) -> None:
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        idx = order[i : i + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def loader_task(x: torch.Tensor, y: torch.Tensor, batch_size: int):
    """The runner's DataLoader Task over the same tensors (as data.loader: true builds it)."""
    from torch.utils.data import DataLoader, TensorDataset

    from prunekit.common.batches import DEFAULT
    from prunekit.tasks.loader import LoaderTask

    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    return LoaderTask(lambda: None, loader, objective=DEFAULT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet_300_100")
    parser.add_argument("--shape", default="1,28,28")
    parser.add_argument("--batch-size", type=int, default=60)
    parser.add_argument("--steps", type=int, default=300, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--loader", action="store_true", help="also time the DataLoader path")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.shape.split(","))
    n = args.steps * args.batch_size
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    cfg = TrainConfig(optimizer="adam", lr=1e-3, batch_size=args.batch_size)

    def fresh(sparsity: float | None):
        torch.manual_seed(0)
        model = create_model(args.model, 10, shape)
        opt = make_optimizer(model.parameters(), cfg)
        if sparsity is not None:
            names = prunable_names(model, [])
            masks = dense_masks(model, names)
            masks = allocation.prune(magnitude(ScoreContext(model, masks)), masks, sparsity)
            apply_masks(model, masks)
            MaskEnforcer(model, masks).attach(opt)
        return model, opt

    setups = {"minimal": fresh(None), "dense": fresh(None), "masked": fresh(args.sparsity)}
    if args.loader:
        setups["loader"] = fresh(None)
        loader = loader_task(x, y, args.batch_size)
    times: dict[str, list[float]] = {k: [] for k in setups}
    for rep in range(args.repeats + 1):  # the first pass warms up and is dropped
        for name, (model, opt) in setups.items():
            g = torch.Generator().manual_seed(rep)
            start = time.perf_counter()
            if name == "minimal":
                minimal_epoch(model, opt, x, y, args.batch_size, g)
            elif name == "loader":
                loader.train_epoch(model, opt, batch_size=args.batch_size, lr_at=lambda _: 1e-3, epoch=0, generator=g)
            else:
                train_epoch(model, opt, x, y, batch_size=args.batch_size, lr_at=lambda _: 1e-3, epoch=0, generator=g)
            if rep:
                times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "seconds_per_step": {k: v / args.steps for k, v in med.items()},
        "dense_over_minimal": med["dense"] / med["minimal"],
        "masked_over_dense": med["masked"] / med["dense"],
    }
    if args.loader:
        result["loader_over_dense"] = med["loader"] / med["dense"]
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
