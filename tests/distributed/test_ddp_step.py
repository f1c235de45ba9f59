"""DDP against one process with the same global batch: after an epoch of `train_epoch_ddp` on two ranks (gloo) the
weights equal those of the one-process loop within float tolerance (so the ranks' gradients were averaged, each
weighted by its share of the batch, also for an uneven last batch), and every sample was trained on exactly once,
by exactly one rank (so no rank trained on the full batch)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from prunekit.train.loop import train_epoch
from tests.distributed.helpers import ROOT, torchrun
from tests.distributed.step_setup import BATCH, LR_AT, SEED, N, make

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict, dict]]:
    out = tmp_path_factory.mktemp("ddp_step")
    done = torchrun(str(ROOT / "tests/distributed/step_worker.py"), str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return [(load_file(out / f"rank{r}.safetensors"), json.loads((out / f"rank{r}.json").read_text())) for r in (0, 1)]


def one_process() -> tuple[dict, float]:
    model, optimizer, x, y = make()
    loss, _ = train_epoch(
        model, optimizer, x, y, batch_size=BATCH, lr_at=LR_AT, epoch=0, generator=torch.Generator().manual_seed(SEED)
    )
    return model.state_dict(), loss


def test_two_ranks_end_where_one_process_with_the_global_batch_ends(ranks: list[tuple[dict, dict]]) -> None:
    single, loss = one_process()
    start = make()[0].state_dict()
    for weights, record in ranks:
        for name, value in single.items():
            assert not torch.allclose(value, start[name])  # the epoch moved every tensor
            torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6)
        assert record["loss"] == pytest.approx(loss, rel=1e-5)


def test_every_sample_is_trained_on_exactly_once_by_one_rank(ranks: list[tuple[dict, dict]]) -> None:
    seen = [record["seen"] for _, record in ranks]
    assert [len(s) for s in seen] == [3, 3]  # both ranks step together
    order = torch.randperm(N, generator=torch.Generator().manual_seed(SEED)).tolist()
    for step in range(3):
        batch = order[step * BATCH : (step + 1) * BATCH]
        assert seen[0][step] == batch[0::2] and seen[1][step] == batch[1::2]  # rows rank, rank + 2, ...
    everything = sorted(i for s in seen for ids in s for i in ids)
    assert everything == list(range(N))
