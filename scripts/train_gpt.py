"""Train prunekit's small GPT on the bytes of the Python standard library (CPU, a few minutes).

The runner does not train language models yet (that comes with its Task split); until then this script does, with
prunekit's model, dataset and perplexity. It writes a dense prunekit file (which `prunekit.load` rebuilds) and a
JSON record beside it.

    nice -n 10 .venv/bin/python scripts/train_gpt.py --out runs/llm/gpt.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import prunekit
from prunekit.config import DataConfig
from prunekit.data import load_dataset
from prunekit.tasks.metrics import perplexity


def token_batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-bytes", type=int, default=4_000_000)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(DataConfig(name="pystdlib", seq_len=args.seq_len, max_bytes=args.max_bytes), args.seed)
    torch.manual_seed(args.seed)
    sizes = {"n_layer": args.n_layer, "n_head": args.n_head, "n_embd": args.n_embd}
    model = prunekit.create_model("gpt", data.num_classes, data.input_shape, **sizes)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    order = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(args.seed))
    val = token_batches(data.val_x[:256], data.val_y[:256], 64)
    log, start = [], time.perf_counter()
    model.train()
    for step in range(args.steps):
        idx = order[(step * args.batch_size + torch.arange(args.batch_size)) % len(order)]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        logits = model(data.train_x[idx])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), data.train_y[idx].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            ppl = perplexity(model, val)
            model.train()
            seconds = time.perf_counter() - start
            log.append({"step": step + 1, "loss": round(loss.item(), 4), "val_ppl": round(ppl, 4), "s": round(seconds)})
            print(
                f"step {step + 1}/{args.steps}  loss {loss.item():.3f}  val ppl {ppl:.3f}  {seconds:.0f} s", flush=True
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    prunekit.save(model.eval(), args.out)
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "log": log, "seconds": time.perf_counter() - start}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
