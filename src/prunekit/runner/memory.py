"""A run's memory, bounded up front: a network whose training would not fit the machine is refused in one line.

A run holds about MULTIPLE copies of the network's state at once (the weights, their initial copy for rewinding, the
unpruned twin, gradients, two optimizer moments, masks); the machine's available memory (Linux MemAvailable) must hold
that plus the data already loaded. Without the check such a config (say lenet_300_100 on 1x1024x1024 inputs: 315
million weights) runs the machine out of memory halfway through, or the kernel kills it without a word.
"""

from __future__ import annotations

from torch import nn

from prunekit.common.errors import UserError

MULTIPLE = 6


def available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo in bytes; None where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(model: nn.Module, device_type: str) -> None:
    """Refuse a network on the CPU whose run needs more than the memory available now."""
    if device_type != "cpu":
        return  # CUDA says "out of memory" itself, as a one-line error (prunekit.cli)
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    need, have = MULTIPLE * state, available_bytes()
    if have is not None and need > have:
        raise UserError(
            f"out of memory: this network's {state / 2**30:.1f} GiB of weights need about {need / 2**30:.1f} GiB "
            f"during a run, and {have / 2**30:.1f} GiB are available; use a smaller model or input shape"
        )
