"""Per-layer ratio files: what a sensitivity scan or an AMC search hands to a config (`prune.ratios_file`).

A ratios file is JSON: {"structure": "channel" | "unstructured", "ratios": {layer: fraction removed}, ...} with any
further keys describing how the ratios were chosen (budget, tolerance, source). A plain {layer: fraction} mapping
is read too, and so is an AMC search log (amc_search.json: its best policy), so a searched policy can be fine-tuned
again by another run. Reading is bounded and never executes anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.safe_text import load_json
from prunekit.common.safety import atomic_write_text


def read_ratios(path: Path, limit: int = 1 << 20) -> dict[str, float]:
    """{layer: fraction removed} from a ratios file; a missing, oversized or malformed file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prune.ratios_file {path}: no such file")
    if path.stat().st_size > limit:
        raise UserError(f"prune.ratios_file {path}: larger than {limit} bytes, not a ratios file")
    data = load_json(path, "prune.ratios_file", limit)  # bounded in size and depth (deep nesting is one line)
    if isinstance(data, dict) and isinstance(data.get("best"), dict):  # an AMC search log: its best policy
        data = data["best"]
    ratios = data.get("ratios", data) if isinstance(data, dict) else None
    if not isinstance(ratios, dict) or not ratios:
        raise UserError(f"prune.ratios_file {path}: expected a JSON object of layer -> fraction removed")
    out = {}
    for name, value in ratios.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not 0.0 <= value < 1.0:
            raise UserError(f"prune.ratios_file {path}: ratio of {name!r} must be a number in [0, 1), got {value!r}")
        out[str(name)] = float(value)
    return out


def write_ratios(path: Path, ratios: dict[str, float], structure: str, **about: Any) -> Path:
    """Write a ratios file; `about` records how they were chosen (budget, tolerance, measured cost, ...)."""
    data = {"structure": structure, "ratios": {k: round(float(v), 6) for k, v in ratios.items()}, **about}
    return atomic_write_text(Path(path), json.dumps(data, indent=1) + "\n")
