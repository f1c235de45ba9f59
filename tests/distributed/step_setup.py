"""The model, optimizer and data that test_ddp_step.py trains in one process and step_worker.py on two ranks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

N, BATCH, SEED = 21, 8, 5  # 3 steps: 8, 8 and a last batch of 5 that two ranks split 3 / 2


def LR_AT(position: float) -> float:  # noqa: N802 (a constant-like schedule)
    return 0.2 * (1.0 - 0.3 * position)


def make() -> tuple[nn.Module, torch.optim.Optimizer, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    x = torch.randn(N, 5, generator=gen)
    x[:, 0] = torch.arange(N, dtype=torch.float32)  # the sample id, as an input the recording objective reads
    y = torch.randint(0, 3, (N,), generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    return model, optimizer, x, y
