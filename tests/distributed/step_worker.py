"""Started by torchrun from test_ddp_step.py (not a test itself): one epoch of `train_epoch_ddp` on each rank from the
same seeded model and data, saving the final weights, the epoch's mean loss and the sample ids each step trained on.

The data's first input column is the sample's id, so a recording objective sees which samples each rank used."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from prunekit.common.batches import Objective  # noqa: E402
from prunekit.distributed import DDPModel, current  # noqa: E402
from prunekit.train.ddp_loop import train_epoch_ddp  # noqa: E402
from tests.distributed.step_setup import BATCH, LR_AT, SEED, make  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    world = current()
    model, optimizer, x, y = make()
    seen: list[list[int]] = []

    def loss(m: torch.nn.Module, batch: tuple) -> torch.Tensor:
        xb, yb = batch
        seen.append([int(v) for v in xb[:, 0].tolist()])
        return torch.nn.functional.cross_entropy(m(xb), yb)

    mean, _ = train_epoch_ddp(
        model,
        optimizer,
        x,
        y,
        batch_size=BATCH,
        lr_at=LR_AT,
        epoch=0,
        generator=torch.Generator().manual_seed(SEED),
        world=world,
        wrapper=DDPModel(),
        objective=Objective(loss=loss),
    )
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / f"rank{world.rank}.safetensors")
    (out / f"rank{world.rank}.json").write_text(json.dumps({"loss": mean, "seen": seen}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
