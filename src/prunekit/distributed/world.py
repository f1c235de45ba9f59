"""Which process this is: one process, or one rank of a torchrun job (gloo on CPU, NCCL on CUDA), and its cores.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and the rendezvous address; `join` starts the process
group from them (or uses one the caller already started) and returns a `World`. Without them a run is one process
and every distributed call is a no-op, so the one-process path stays exactly what it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from prunekit.common.errors import UserError


@dataclass(frozen=True)
class World:
    """This process's place in a distributed run (rank 0 of 1 when there is none)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str = ""

    @property
    def main(self) -> bool:
        """Rank 0: the only process that writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def device(self) -> torch.device:
        """Where tensors handed to collectives live: the rank's GPU under NCCL, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SOLO = World()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise UserError(f"environment variable {name} must be an integer, got {os.environ[name]!r}") from None


def current() -> World:
    """The World of the process group already started in this process (SOLO when none, or a group of one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return SOLO
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=_env_int("LOCAL_RANK", 0),
        local_size=_env_int("LOCAL_WORLD_SIZE", 1),
        backend=str(dist.get_backend()),
    )


def wants_cuda(device: str) -> bool:
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def join(device: str) -> tuple[World, bool]:
    """(World, whether this call started the process group). Under torchrun (WORLD_SIZE > 1) with no group yet,
    start one: NCCL when the run trains on CUDA (each rank on GPU LOCAL_RANK), gloo on CPU."""
    if current().distributed or _env_int("WORLD_SIZE", 1) <= 1:
        return current(), False
    if not dist.is_available():
        raise UserError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed; run one process")
    backend = "gloo"
    if wants_cuda(device):
        local = _env_int("LOCAL_RANK", 0)
        if local >= torch.cuda.device_count():
            raise UserError(
                f"local rank {local} has no GPU ({torch.cuda.device_count()} on this node): "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        torch.cuda.set_device(local)
        backend = "nccl"
    dist.init_process_group(backend=backend)
    return current(), True


def leave(started: bool) -> None:
    """Destroy the process group if `join` started it (a caller's own group is left alone)."""
    if started and dist.is_initialized():
        dist.destroy_process_group()


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, which respects taskset and container limits)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def thread_budget(configured: int | None, world: World) -> tuple[int, str]:
    """(torch threads for this rank, one line saying how the node's cores are divided). The ranks on one node share
    its cores evenly (at least one thread each) unless the config's `threads` says otherwise."""
    n, share = cores(), world.local_size
    threads = configured if configured is not None else max(n // share, 1)
    how = "set by the config's threads" if configured is not None else f"{n} cores / {share} ranks"
    over = " (more threads than cores: expect contention)" if threads * share > n else ""
    line = (
        f"distributed: {world.size} processes ({world.backend}), {share} on this node sharing {n} cores: "
        f"{threads} thread{'s' * (threads != 1)} each ({how}){over}"
    )
    return threads, line
