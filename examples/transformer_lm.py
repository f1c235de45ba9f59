"""A small transformer language model, written here, pruned with IMP and learning-rate rewinding through
`prunekit.Experiment`, on bytes of the Python standard library's own sources (offline, in every Python install).

    .venv/bin/python examples/transformer_lm.py --out runs/transformer_lm                  # a few CPU minutes
    .venv/bin/python examples/transformer_lm.py --out /tmp/lm --tiny                       # seconds (the tests)
    .venv/bin/python examples/transformer_lm.py --out runs/lm_channels --structure channel # 50% heads/MLP channels

The model: byte embedding tied to the output projection (one tensor), learned positions, pre-norm blocks of
hand-written causal self-attention (separate q, k, v and output Linear layers) and an MLP, next-byte logits.
The data: the standard library's top-level .py files in sorted order (found with sysconfig); every tenth file
(from the first) is held out for test and every tenth from the second for validation, the rest is training text,
each cut into non-overlapping windows. The metric is perplexity per byte (lower is better).

--structure unstructured (default): IMP, 30% of the remaining covered weights per round for 3 rounds, weights kept
(learning-rate rewinding: every round replays the cosine schedule). prunekit covers the attention and MLP weights;
the tied embedding/output matrix is the output layer and an embedding, so it is left out (printed at the start).
--structure channel: one-shot removal of 50% of the attention/MLP channels (whole heads: the attention infers its
head count, view(b, t, -1, head_dim), so thinner q/k/v layers still fit), then retraining with the schedule replayed.
"""

from __future__ import annotations

import argparse
import math
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

import prunekit


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.head_dim = dim // heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        # The head count is inferred (-1), not written: after whole heads are pruned the thinner q/k/v still fit.
        q, k, v = (f(x).view(b, t, -1, self.head_dim).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TransformerLM(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int, context: int, vocab: int = 256) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        nn.init.normal_(self.tok.weight, std=0.02)  # it is also the output projection: small logits at the start
        self.pos = nn.Parameter(torch.randn(context, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.tok.weight  # tied

    def forward(self, idx: Tensor) -> Tensor:
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln(x))


def stdlib_files() -> list[Path]:
    """The standard library's top-level .py files, in a fixed (sorted) order."""
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def read_bytes(files: list[Path], limit: int) -> Tensor:
    data = bytearray()
    for path in files:
        if len(data) >= limit:
            break
        data += path.read_bytes()
    return torch.tensor(list(data[:limit]), dtype=torch.long)


class Windows(Dataset):
    """(input, next-byte target) pairs: non-overlapping windows of `context + 1` bytes."""

    def __init__(self, data: Tensor, context: int) -> None:
        self.windows = data[: len(data) // (context + 1) * (context + 1)].view(-1, context + 1)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.windows[i, :-1], self.windows[i, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="run directory (resumes if it exists)")
    parser.add_argument("--structure", choices=["unstructured", "channel"], default="unstructured")
    parser.add_argument("--tiny", action="store_true", help="seconds: a tiny model on a few kilobytes")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per round (default 4; tiny 1)")
    args = parser.parse_args()
    size = (
        dict(dim=16, heads=2, layers=1, context=16, train=4_000, held=1_000, batch=16, epochs=1)
        if args.tiny
        else dict(dim=64, heads=4, layers=2, context=64, train=600_000, held=60_000, batch=32, epochs=4)
    )
    epochs = args.epochs or size["epochs"]
    files = stdlib_files()
    splits = {
        "test": [f for i, f in enumerate(files) if i % 10 == 0],
        "val": [f for i, f in enumerate(files) if i % 10 == 1],
        "train": [f for i, f in enumerate(files) if i % 10 > 1],
    }
    data = {
        s: Windows(read_bytes(fs, size["train"] if s == "train" else size["held"]), size["context"])
        for s, fs in splits.items()
    }
    train = DataLoader(data["train"], batch_size=size["batch"], shuffle=True)
    val = DataLoader(data["val"], batch_size=256)
    test = DataLoader(data["test"], batch_size=256)

    def build() -> nn.Module:
        return TransformerLM(size["dim"], size["heads"], size["layers"], size["context"])

    if args.structure == "channel":
        prune = {"structure": "channel", "method": "oneshot", "sparsity": [0.5], "rewind": "lr"}
        prune |= {"criterion": "l1_filter", "retrain_epochs": epochs}
    else:
        prune = {"method": "imp", "rounds": 3, "rate": 0.3, "rewind": "lr"}
    config = {
        "threads": 1,
        "train": {"epochs": epochs, "optimizer": "adam", "lr": 0.003, "lr_schedule": "cosine"},
        "prune": prune,
    }
    print(prunekit.prunable(build(), example_inputs=data["train"][0][0][None]))
    sizes = ", ".join(f"{s} {len(d)}" for s, d in data.items())
    print(f"windows of {size['context'] + 1} bytes: {sizes} (from {len(files)} files)")
    start = time.perf_counter()
    experiment = prunekit.Experiment(config, model=build, train=train, val=val, test=test, metric="perplexity")
    try:
        summary = experiment.run(args.out)
    except prunekit.UserError as e:  # e.g. a channel-pruning refusal: one line, as the CLI prints it
        raise SystemExit(f"transformer_lm: {e}") from None
    for r in summary["rounds"]:
        channels = f" (channels {r['channel_fraction']:.2%})" if r.get("channel_fraction") is not None else ""
        print(f"round {r['round']}: sparsity {r['sparsity']:.2%}{channels}, test perplexity {r['test_metric']:.3f}")
    bits = math.log2(summary["final_metric"])
    print(f"final: {bits:.3f} bits per byte; {time.perf_counter() - start:.0f} s in this call")


if __name__ == "__main__":
    main()
