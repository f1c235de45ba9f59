"""The AMC search of runs that made one (RUN_DIR/amc_search.json): reward per episode and the best policy's ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit.common.safe_text import finite
from prunekit.pruning.amc import log_file
from prunekit.report.document import Figure, Section
from prunekit.report.runs import RunInfo
from prunekit.report.tables import Table, pct

LOG_NAME = log_file.LOG_NAME


def load_log(run_dir: Path) -> dict[str, Any] | None:
    """The run's checked search log (prunekit.pruning.amc.log_file); None when the run made none."""
    path = Path(run_dir) / LOG_NAME
    return log_file.load_log(path) if path.exists() else None


def reward_figure(logs: list[tuple[RunInfo, dict[str, Any]]]) -> bytes | None:
    from prunekit.report.figures import _png, plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for run, log in logs:
        rows = [r for r in log["history"] if finite(r.get("reward")) and r.get("episode") is not None]
        if not rows:
            continue
        (line,) = ax.plot([r["episode"] for r in rows], [r["reward"] for r in rows], lw=0.8, alpha=0.8, label=run.label)
        best = log["best"]
        ax.plot(
            [best.get("episode") or 0],
            [best["reward"] if finite(best.get("reward")) else 0],
            marker="*",
            ms=12,
            color=line.get_color(),
        )
        ax.axvline((log.get("warmup") or 0) - 0.5, color=line.get_color(), ls=":", lw=1)
    if not ax.lines:
        plt.close(fig)
        return None
    ax.set_xlabel("episode (dotted: end of the random warm-up; star: best policy)")
    ax.set_ylabel("reward")
    ax.set_title("AMC search: reward per episode")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def ratio_table(run: RunInfo, log: dict[str, Any]) -> Table:
    best, layers = log["best"], log.get("layers") or []
    kept = best.get("kept") or []
    rows = []
    for i, layer in enumerate(layers):
        name, size = layer.get("name", "?"), layer.get("size")
        k = kept[i] if i < len(kept) else None
        ratio = best["ratios"].get(name)
        rows.append([name, f"{size}", "-" if k is None else f"{k}", pct(ratio, 1)])
    budget = log.get("budget") or {}
    what = f"{budget.get('kind')} budget {budget.get('fraction')} kept" if budget else "no budget (error x log FLOPs)"
    met = best.get("cost_fraction", best.get("flops_fraction"))
    note = (
        f"{log.get('structure')} pruning, {what}: met {met}; best of {log.get('episodes')} episodes "
        f"({log.get('warmup')} warm-up) at episode {best.get('episode')}, accuracy without fine-tuning "
        f"{pct(best.get('accuracy'))}% (dense {pct(log.get('dense_accuracy'))}%) on "
        f"{log.get('reward_examples', '?')} validation examples; search {log.get('search_seconds') or 0:.0f} s."
    )
    unit = "channels" if log.get("structure") == "channel" else "weights"
    return Table(f"AMC best policy: {run.label}", ["layer", unit, "kept", "removed (%)"], rows, note)


def amc_section(runs: list[RunInfo]) -> Section | None:
    logs = [(r, log) for r in runs if (log := load_log(r.path)) is not None]
    if not logs:
        return None
    png = reward_figure(logs)
    blocks: list = [Figure("amc_rewards.png", png, "AMC search: reward per episode")] if png else []
    blocks += [ratio_table(r, log) for r, log in logs]
    return Section("AMC search", blocks)
