"""Your CNN, your training loop: prune a network prunekit has never seen, keep it sparse while you fine-tune it.

    .venv/bin/python examples/custom_cnn_own_loop.py            # about a minute on one CPU core
    .venv/bin/python examples/custom_cnn_own_loop.py --tiny     # a few seconds (what the tests run)

The data are synthetic images (each class a fixed random pattern plus noise), so the example runs offline. The steps:
train densely with a plain PyTorch loop; `prunekit.prunable` shows what a prune will touch; `prunekit.prune` removes
80% of those weights by magnitude (the output layer, traced from the model's outputs, is left alone); `keep_masked`
keeps the pruned weights at zero through the same loop while fine-tuning; the sparse file is then a fraction of
the dense one and loads back to the same outputs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import prunekit


class SmallCNN(nn.Module):
    """A user's own network: two conv blocks with batch norm, global pooling, a two-layer head."""

    def __init__(self, classes: int, width: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.hidden = nn.Linear(2 * width, 64)
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(x)).mean((2, 3))
        return self.classifier(F.relu(self.hidden(h)))


def synthetic(n: int, classes: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    patterns = torch.randn(classes, 3, 16, 16, generator=torch.Generator().manual_seed(1234))
    y = torch.randint(classes, (n,), generator=generator)
    return 0.6 * patterns[y] + torch.randn(n, 3, 16, 16, generator=generator), y


def train(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    """An ordinary loop: nothing in it knows about pruning."""
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small data and network")
    parser.add_argument("--sparsity", type=float, default=0.8)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    n, width, epochs = (256, 8, 1) if args.tiny else (4000, 16, 4)
    g = torch.Generator().manual_seed(0)
    (x, y), (x_test, y_test) = synthetic(n, 5, g), synthetic(n // 4, 5, g)

    model = SmallCNN(5, width)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train(model, opt, x, y, epochs)
    print(f"dense: test accuracy {accuracy(model, x_test, y_test):.2%}")

    print(prunekit.prunable(model, example_inputs=x[:2]))  # what the prune will touch, and what it leaves out
    masks = prunekit.prune(model, args.sparsity, example_inputs=x[:2], min_density=0.05)  # no layer collapses
    print(masks.report)
    print(f"pruned, before fine-tuning: test accuracy {accuracy(model, x_test, y_test):.2%}")

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    handle = prunekit.keep_masked(model, masks, opt)  # after every step, pruned weights are zero again
    train(model, opt, x, y, epochs)
    handle.remove()
    params = dict(model.named_parameters())
    assert all(torch.all(params[name][~mask] == 0) for name, mask in masks.items())
    print(f"fine-tuned at {masks.report.sparsity:.0%} sparsity: test accuracy {accuracy(model, x_test, y_test):.2%}")

    with tempfile.TemporaryDirectory() as tmp:
        dense = prunekit.save(model, Path(tmp) / "dense.safetensors")
        sparse = prunekit.save(model, Path(tmp) / "sparse.safetensors", format="sparse", masks=masks)
        loaded = prunekit.load(sparse, builder=lambda arch: SmallCNN(5, width))  # your class rebuilds it
        same = torch.equal(loaded(x_test), model.eval()(x_test))
        ratio = sparse.stat().st_size / dense.stat().st_size
        print(f"sparse file: {ratio:.2f}x the dense file; loads back to identical outputs: {same}")


if __name__ == "__main__":
    main()
