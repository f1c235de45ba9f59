"""Reading run directories written by older prunekit versions with today's meaning of their fields.

Before `channel_fraction` existed, a channel run's rounds recorded the fraction of prunable channels removed as
`sparsity`. Today `sparsity` is the fraction of prunable weights removed in every run, and `channel_fraction` the
channel one. A round of a channel run without `channel_fraction` is from before: its `sparsity` moves to
`channel_fraction`, and its `sparsity` becomes the fraction of the parameters removed (physical parameters against
round 0's, the dense network: biases and normalisation included, the closest the old record allows).
"""

from __future__ import annotations

from typing import Any

LEGACY_NOTE = "legacy_channel_sparsity"  # set on a summary whose rounds were converted


def is_channel(summary: dict[str, Any], config: dict[str, Any] | None = None) -> bool:
    prune = (config or {}).get("prune") or {}
    return "channel" in (summary.get("structure"), prune.get("structure"))


def upgrade(summary: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """`summary` with the rounds of an older channel run in today's meaning (the same object when nothing changes)."""
    rows = summary.get("rounds") or []
    old = [r for r in rows if isinstance(r, dict) and "channel_fraction" not in r and r.get("sparsity") is not None]
    if not is_channel(summary, config) or not old:
        return summary
    dense = next((r.get("params") for r in rows if isinstance(r, dict) and r.get("round") == 0), None)
    converted = []
    for r in rows:
        if r in old:
            params = r.get("params")
            weights = 1.0 - params / dense if dense and params is not None else None
            r = {**r, "channel_fraction": r["sparsity"], "sparsity": None if weights is None else round(weights, 6)}
        converted.append(r)
    final = converted[-1] if converted else {}
    return {
        **summary,
        "rounds": converted,
        "final_sparsity": final.get("sparsity"),
        "final_channel_fraction": final.get("channel_fraction"),
        LEGACY_NOTE: True,
    }
