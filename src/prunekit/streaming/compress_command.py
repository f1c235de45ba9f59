"""`prunekit compress-checkpoint`: structured compression of a checkpoint directory, one block in memory at a time.

    prunekit compress-checkpoint DIR --out DIR_SMALLER --fraction 0.25 [--depth] [--no-width] [--heads groups]
        [--importance activation] [--block-metric influence] [--size num_hidden_layers=24 ...]
        [--calibration synthetic|pystdlib|text:PATH --batches 16 --seq-len 512 --seed 0]

The options are `prunekit.compress`'s; calibration as `prune-checkpoint`'s (see `command`). A rerun of the same
command after a kill resumes it; one finished leaves `compress_summary.json` beside the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from prunekit.common.errors import UserError
from prunekit.streaming.command import Calibration, calibration_batches

SIZE_KEYS = ("num_hidden_layers", "intermediate_size", "num_attention_heads", "num_key_value_heads")


def parse_sizes(items: list[str] | None) -> dict[str, int] | None:
    """["num_hidden_layers=24", ...] -> {"num_hidden_layers": 24, ...}; None when none are given."""
    if not items:
        return None
    sizes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in SIZE_KEYS or not value.strip().isdigit():
            raise UserError(f"--size {item!r}: expected KEY=N with KEY one of {', '.join(SIZE_KEYS)}")
        sizes[key] = int(value)
    return sizes


def run_command(
    source: Path,
    out: Path,
    options: dict[str, Any],
    calibration: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Compress `source` into `out` with `options` (prunekit.compress's keywords; None: the default) and calibration
    batches made as `calibration` says (source, batches, seq_len, seed; None: the default)."""
    from prunekit.streaming.compress import compress_checkpoint

    options = {k: v for k, v in options.items() if v is not None}
    options["sizes"] = parse_sizes(options.pop("size", None))
    fraction = options.pop("fraction", None if options["sizes"] else 0.25)
    calib = replace(Calibration(), **{k: v for k, v in calibration.items() if v is not None})
    needs = options.get("importance", "activation") == "activation" or options.get("depth", False)
    batches = calibration_batches(source, calib) if needs else []
    return compress_checkpoint(source, out, fraction, batches=batches, log=log, **options)
