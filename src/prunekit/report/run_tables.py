"""The tables of one run (its rounds, its final network per layer) and of runs scored by another metric."""

from __future__ import annotations

from typing import Any

from prunekit.report.legacy import LEGACY_NOTE
from prunekit.report.runs import RunInfo
from prunekit.report.tables import Table, fmt, pct


def metric_name(summary: dict[str, Any]) -> str:
    """The run's metric: accuracy, or what a task reports instead (perplexity, a loss)."""
    metric = summary.get("metric")
    return str(metric.get("name") or "accuracy") if isinstance(metric, dict) else "accuracy"


def _score(summary: dict[str, Any], r: dict[str, Any], split: str) -> str:
    if metric_name(summary) == "accuracy":
        return pct(r.get(f"{split}_accuracy"))
    return fmt(r.get(f"{split}_metric"), ".4g")


def rounds(summary: dict[str, Any]) -> Table:
    name = metric_name(summary)
    scored = ["test acc %", "val acc %"] if name == "accuracy" else [f"test {name}", f"val {name}"]
    header = [
        "round",
        "sparsity %",
        "weights left %",
        *scored,
        "epochs",
        "wall s",
        "params",
        "MFLOPs",
    ]
    channels = any(r.get("channel_fraction") is not None for r in summary.get("rounds") or [])
    if channels:  # channel runs: sparsity counts weights; what the config's fraction counts is beside it
        header[3:3] = ["channels removed %", "FLOPs removed %"]
    timed = any(r.get("latency_ms") is not None for r in summary.get("rounds") or [])
    if timed:  # channel-pruned runs: the network is physically thinner, so its MACs and latency are real
        header += ["MMACs", "latency ms (CPU, batch 32)"]
    quantised = any(r.get("mean_bits") is not None for r in summary.get("rounds") or [])
    if quantised:  # BitPruning: the learned bitlengths
        header += ["mean bits per layer", "bits per weight"]
    rows = []
    for i, r in enumerate(summary.get("rounds") or []):
        s, flops = r.get("sparsity"), r.get("flops")
        row = [
            str(r.get("round", i)),
            pct(s),
            pct(None if s is None else 1 - s),
            *([pct(r.get("channel_fraction")), pct(r.get("flops_removed"))] if channels else []),
            _score(summary, r, "test"),
            _score(summary, r, "val"),
            fmt(r.get("epochs"), "d"),
            fmt(r.get("wall_seconds"), ".1f"),
            fmt(r.get("params"), ",d"),
            fmt(None if flops is None else flops / 1e6, ".3f"),
        ]
        if timed:
            row += [fmt(None if flops is None else flops / 2e6, ".3f"), fmt(r.get("latency_ms"), ".2f")]
        if quantised:
            row += [fmt(r.get("mean_bits"), ".2f"), fmt(r.get("bits_per_weight"), ".2f")]
        rows.append(row)
    note = "sparsity: the fraction of prunable weights removed" + (
        "; channels removed: the fraction of prunable channels (what prune.sparsity asks for in a channel run)"
        if channels
        else ""
    )
    if summary.get(LEGACY_NOTE):
        note += (
            "; written by an older prunekit that recorded the channel fraction as sparsity: sparsity here is the"
            " fraction of all parameters removed"
        )
    return Table("Rounds", header, rows, note)


def metric_table(runs: list[RunInfo]) -> Table | None:
    """Runs scored by another metric than accuracy (language models: perplexity, lower is better), round by round;
    the accuracy tables and figures of a report have nothing to show for them."""
    scored = [r for r in runs if metric_name(r.summary) != "accuracy"]
    if not scored:
        return None
    rows = [
        [r.label, str(row.get("round", i)), pct(row.get("sparsity")), _score(r.summary, row, "test")]
        + [_score(r.summary, row, "val"), metric_name(r.summary), fmt(row.get("epochs"), "d")]
        for r in scored
        for i, row in enumerate(r.summary.get("rounds") or [])
    ]
    header = ["run", "round", "sparsity %", "test", "val", "metric", "epochs"]
    note = "the metric of each run as its task reports it (perplexity: lower is better)"
    return Table("Runs scored by another metric than accuracy", header, rows, note)


def layers(summary: dict[str, Any]) -> Table:
    entries = summary.get("layers") or []
    quantised = any(layer.get("bits") is not None for layer in entries)  # BitPruning's learned bitlengths
    header = ["tensor", "shape", "numel", "sparsity %", "units with no input %"] + (["bits"] if quantised else [])
    rows = [
        [
            str(layer.get("name", "?")),
            "x".join(map(str, layer.get("shape") or [])),
            f"{layer['numel']:,}" if layer.get("numel") is not None else "-",
            pct(layer.get("sparsity")),
            pct(layer.get("units_pruned")),
        ]
        + ([fmt(layer.get("bits"), "d")] if quantised else [])
        for layer in entries
    ]
    return Table("Final network, per layer", header, rows)


def rounds_table(summary: dict[str, Any]) -> str:
    """Markdown rounds table (printed by `prunekit run`)."""
    return rounds(summary).markdown()


def layers_table(summary: dict[str, Any]) -> str:
    return layers(summary).markdown()
