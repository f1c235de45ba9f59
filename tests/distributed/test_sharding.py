"""The sharding of a user's training data between ranks (tasks/sharding.py), by value, without torchrun: over an
epoch the ranks' batches hold every sample exactly once (a resharded DataLoader) or every batch exactly once (the
strided fallback), each rank gets the same number of steps, and an epoch's order changes with the seed."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from prunekit.distributed.world import World
from prunekit.tasks.sharding import RankBatches


def ids(batches: list) -> list[int]:
    return [int(v) for b in batches for v in b[0].tolist()]


def shard(train: object, size: int, seed: int, total_steps: int) -> list[list]:
    return [list(RankBatches(train, World(rank=r, size=size), total_steps).epoch(seed)) for r in range(size)]


def test_a_shuffled_loader_is_split_into_disjoint_shares_that_cover_the_data() -> None:
    loader = DataLoader(TensorDataset(torch.arange(48)), batch_size=8, shuffle=True)  # the global batch
    for size in (2, 4):
        parts = shard(loader, size, seed=3, total_steps=6)
        assert [len(p) for p in parts] == [6] * size  # every rank steps 6 times
        assert {len(b[0]) for p in parts for b in p} == {8 // size}  # with its share of the global batch
        seen = [i for p in parts for i in ids(p)]
        assert sorted(seen) == list(range(48))  # every sample once, on exactly one rank
    first, again, other = (ids(shard(loader, 2, s, 6)[0]) for s in (3, 3, 4))
    assert first == again and first != other  # the epoch's order follows the seed
    assert sorted(first) != first  # shuffled, as the user's loader asked


def test_an_iterable_is_strided_by_batch_and_the_trailing_batches_left_out() -> None:
    batches = [(torch.arange(4 * i, 4 * i + 4),) for i in range(7)]  # a plain list: cannot be resharded
    parts = shard(batches, 2, seed=0, total_steps=7)
    assert [ids(p) for p in parts] == [
        [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19],  # batches 0, 2, 4 on rank 0
        [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23],  # batches 1, 3, 5 on rank 1; batch 6 left out
    ]
