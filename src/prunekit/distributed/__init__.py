"""One run on many processes (torchrun + DistributedDataParallel); see docs/distributed.md for the conventions.

The runner and the methods know only three things about it: rank 0 writes (the Store reads files on rank 0 and
shares them), pruning is decided once (`prunekit.runner.agree`), and the ranks' weights are checked identical after
every round.
Data sharding, DDP and sharded evaluation live inside the Tasks.
"""

from prunekit.distributed.collectives import MirroredError, all_reduce_sum, check_model, check_same, share
from prunekit.distributed.ddp import DDPModel, average_outside_grads, rank_seed
from prunekit.distributed.world import SOLO, World, cores, current, join, leave, thread_budget

__all__ = [
    "DDPModel",
    "MirroredError",
    "SOLO",
    "World",
    "all_reduce_sum",
    "average_outside_grads",
    "check_model",
    "check_same",
    "cores",
    "current",
    "join",
    "leave",
    "rank_seed",
    "share",
    "thread_budget",
]
