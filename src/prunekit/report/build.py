"""Collect run directories and write report.md, report.html and the PNGs, for one run or a comparison of several."""

from __future__ import annotations

from pathlib import Path

from prunekit.common.safety import atomic_write_bytes, atomic_write_text
from prunekit.report import figures, run_tables, sources, tables
from prunekit.report.amc import amc_section
from prunekit.report.document import Document, Figure, Section, to_markdown
from prunekit.report.html import to_html
from prunekit.report.runs import RunInfo, find_runs, load_runs, load_summary
from prunekit.report.sweep import Group, group_runs, speedups

__all__ = ["build_document", "find_runs", "load_summary", "write_report", "write_run_report"]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _intro(runs: list[RunInfo], groups: list[Group]) -> str:
    running = sum(not r.complete for r in runs)
    sweeps = sum(g.n > 1 for g in groups)
    parts = [f"{len(runs)} run{'s' * (len(runs) != 1)}"]
    parts += [f"{running} still in progress (their finished rounds are shown)"] if running else []
    parts += [f"{sweeps} sweep{'s' * (sweeps != 1)} over seeds shown as mean ± std"] if sweeps else []
    return ", ".join(parts) + ". Accuracies are test accuracies; sparsity is the fraction of prunable weights removed."


CAPTIONS = {
    "accuracy_vs_sparsity.png": "Test accuracy vs weights remaining (log scale); dotted lines: each run's dense "
    "accuracy; bands: ± std over seeds",
    "accuracy_vs_flops.png": "Test accuracy vs FLOPs remaining, channel-pruned runs",
    "training.png": "Validation accuracy (training loss where no validation split) per epoch; each round's epochs "
    "follow the previous round's",
    "cost.png": "Epochs and wall time per run (sweeps: mean ± std)",
}


SINGLE_SEED = {  # the captions of reports whose every group is one run: no band, no std, nothing over seeds
    "accuracy_vs_sparsity.png": "Test accuracy vs weights remaining (log scale); dotted lines: each run's dense "
    "accuracy",
    "cost.png": "Epochs and wall time per run",
}


def _figures(*named: tuple[str, bytes | None], seeds: bool = True) -> list[Figure]:
    """The figures that were drawn, captioned; `seeds`: whether some group averages several runs."""
    captions = CAPTIONS if seeds else {**CAPTIONS, **SINGLE_SEED}
    return [Figure(name, png, captions[name]) for name, png in named if png]


def _layer_figures(groups: list[Group]) -> list[Figure]:
    models = list(dict.fromkeys(g.first.model for g in groups))
    out = []
    for model in models:
        png = figures.layer_bars([g for g in groups if g.first.model == model])
        name = "layers.png" if len(models) == 1 else f"layers_{_slug(model)}.png"
        caption = f"{model}: per-layer weights pruned and output units left with no incoming weight, final network"
        out += [Figure(name, png, caption)] if png else []
    return out


def build_document(runs: list[RunInfo], title: str) -> Document:
    groups = group_runs(runs)
    seeds = any(g.n > 1 for g in groups)
    accuracy = _figures(
        ("accuracy_vs_sparsity.png", figures.accuracy_vs_weights(groups)),
        ("accuracy_vs_flops.png", figures.accuracy_vs_flops(groups)),
        seeds=seeds,
    )
    sweep = tables.sweep_table(groups)
    other = [t for t in [run_tables.metric_table(runs)] if t is not None]  # perplexity and other metrics, by round
    controls = tables.control_table(groups)
    sections = [
        Section("Summary", [_intro(runs, groups), tables.runs_table(runs)]),
        Section("Accuracy vs sparsity", [*accuracy, *other] or ["No finished rounds yet."]),
        Section(
            "Results",
            [tables.ratio_table(groups), tables.method_table(groups), tables.course_table(groups)]
            + ([sweep] if sweep else [])
            + ([controls] if controls else []),
        ),
        Section("Beside the source documents", sources.source_tables(groups)),
        Section("Per-layer sparsity", _layer_figures(groups)),
        Section("Training curves", _figures(("training.png", figures.training_curves(groups)))),
        Section(
            "Cost",
            [
                tables.cost_table(groups, speedups(groups)),
                *_figures(("cost.png", figures.cost_bars(groups)), seeds=seeds),
            ],
        ),
    ]
    sections.append(amc_section(runs) or Section("AMC search"))  # empty sections are dropped below
    for r in runs:
        blocks = [run_tables.rounds(r.summary)]
        blocks += [run_tables.layers(r.summary)] if r.summary.get("layers") else []
        sections.append(Section(f"Run {r.label}", [f"{r.path} — {r.method_label}", *blocks], details=len(runs) > 1))
    return Document(title, [s for s in sections if s.blocks])


def write_report(run_dirs: list[Path], out: Path, title: str = "prunekit report") -> Path:
    """Write report.md, report.html and the figures into `out`; returns the path of report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = build_document(load_runs(run_dirs), title)
    for fig in doc.figures:
        atomic_write_bytes(out / fig.name, fig.png)
    atomic_write_text(out / "report.html", to_html(doc))
    return atomic_write_text(out / "report.md", to_markdown(doc))


def write_run_report(run_dir: Path) -> Path:
    """The run directory's own report (written by `prunekit run`), made by the same code as comparisons."""
    run_dir = Path(run_dir)
    name = load_summary(run_dir).get("name") or run_dir.name
    return write_report([run_dir], run_dir, title=f"{name}: {run_dir}")
