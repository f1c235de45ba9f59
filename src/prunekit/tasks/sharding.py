"""How a user's training data is split between the ranks of a distributed run (LoaderTask).

A torch DataLoader over a map-style dataset with a plain random or sequential sampler is rebuilt with a
DistributedSampler: each rank loads only its share, with batch_size / N examples per step, so `batch_size` of the
user's loader stays the global batch (it must divide by the number of processes). The sampler reshuffles every epoch
from a seed the runner derives from (seed, round, epoch), so epochs replay after a resume. Anything else (an
iterable, an IterableDataset, a custom batch sampler) cannot be resharded: each rank takes every N-th batch (rank
r: batches r, r+N, ...), the same number on every rank, so a step trains on N of the user's batches and an epoch has
1/N of the steps (the schedule, a function of the position in the epoch, still means the same); up to N-1 trailing
batches of an epoch are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from prunekit.common.errors import UserError
from prunekit.distributed import World


def reshard(train: Iterable[Any], world: World) -> Any | None:
    """`train` rebuilt with a DistributedSampler for this rank, or None when it cannot be."""
    from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, SequentialSampler

    if not isinstance(train, DataLoader) or isinstance(train.dataset, IterableDataset) or train.batch_size is None:
        return None
    if type(train.sampler) not in (RandomSampler, SequentialSampler):
        return None
    if train.batch_size % world.size:
        raise UserError(
            f"the training DataLoader's batch_size {train.batch_size} is the global batch and must divide by the "
            f"{world.size} processes"
        )
    sampler = DistributedSampler(
        train.dataset,
        num_replicas=world.size,
        rank=world.rank,
        shuffle=isinstance(train.sampler, RandomSampler),
        drop_last=train.drop_last,
    )
    return DataLoader(
        train.dataset,
        batch_size=train.batch_size // world.size,
        sampler=sampler,
        num_workers=train.num_workers,
        collate_fn=train.collate_fn,
        pin_memory=train.pin_memory,
        drop_last=train.drop_last,
        timeout=train.timeout,
        worker_init_fn=train.worker_init_fn,
        multiprocessing_context=train.multiprocessing_context,
        persistent_workers=train.persistent_workers,
        prefetch_factor=train.prefetch_factor if train.num_workers else None,
    )


class RankBatches:
    """This rank's training batches of every epoch (see the module docstring)."""

    def __init__(self, train: Iterable[Any], world: World, total_steps: int) -> None:
        self.train, self.world = train, world
        self.loader = reshard(train, world)
        self.steps = len(self.loader) if self.loader is not None else total_steps // world.size
        if self.steps == 0:
            raise UserError(f"the training data has fewer batches per rank than 1 with {world.size} processes")

    def epoch(self, seed: int) -> Iterator[Any]:
        if self.loader is not None:
            self.loader.sampler.set_epoch(seed % 2**31)
            return islice(iter(self.loader), self.steps)
        strided = (b for i, b in enumerate(self.train) if i % self.world.size == self.world.rank)
        return islice(strided, self.steps)
