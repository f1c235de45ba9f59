"""Figures as PNG bytes, drawn with matplotlib's Agg backend; each group keeps its one colour in every figure."""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter  # noqa: E402

from prunekit.report.sweep import Group, Stat, stat  # noqa: E402

DPI = 110
LOG_TICKS = [100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01]
ZOOM_BELOW_BEST = 1.5  # the zoomed panel shows accuracies within this many points below the best dense accuracy
# Where the last figure's legends and axes ended up (display pixels), for tests of the layout rules.
last_layout: dict[str, list[tuple[float, float, float, float]]] = {}


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout(rect=getattr(fig, "legend_rect", (0, 0, 1, 1)))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    last_layout.clear()
    last_layout["axes"] = [tuple(ax.get_window_extent(renderer).bounds) for ax in fig.axes if ax.get_visible()]
    last_layout["legends"] = [tuple(leg.get_window_extent(renderer).bounds) for leg in legends]
    last_layout["figure"] = [tuple(fig.bbox.bounds)]
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _legend_outside(fig: plt.Figure, ax: plt.Axes, handles: list | None = None, labels: list | None = None) -> None:
    """One legend to the right of the plotting area, never over data; the figure widens to make room."""
    handles, labels = ax.get_legend_handles_labels() if handles is None else (handles, labels)
    if not handles:
        return
    inches = 0.065 * max(len(label) for label in labels) + 0.6  # 8-point text, plus the line sample
    old = fig.get_figwidth()
    fig.set_figwidth(old + inches)
    width = inches / (old + inches)
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1 - width, 0.98), fontsize=8, frameon=False)
    fig.legend_rect = (0, 0, 1 - width, 1)


def _percent_left(values: list[float]) -> list[float]:
    return [max(v, 1e-3) for v in values]


def _accuracy_plot(
    groups: list[Group], x_of: Callable[[Group, list], list[float] | None], xlabel: str, title: str
) -> bytes | None:
    """Accuracy against a log-scale x; a second, zoomed panel when a collapse would hide the differences on top."""
    series = []
    for g in groups:
        curve = g.curve()
        xs = x_of(g, curve) if curve else None
        if not xs:
            continue
        points = sorted(zip(xs, curve, strict=True), key=lambda p: -p[0])
        dense = g.stat(lambda r: r.dense_accuracy)
        series.append(
            (
                g,
                [p[0] for p in points],
                [100 * p[1][1].mean for p in points],
                [100 * p[1][1].std for p in points],
                None if dense is None else 100 * dense.mean,
            )
        )
    if not series:
        return None
    drawn = [x for _, xs, _, _, _ in series for x in xs]
    ys = [y for _, _, y, _, _ in series for y in y]
    zoom = _zoom_range(ys, [d for *_, d in series if d is not None])
    fig, axes = plt.subplots(2 if zoom else 1, 1, figsize=(7.5, 7.6 if zoom else 4.8), squeeze=False, sharex=True)
    for ax in axes[:, 0]:
        for g, x, y, err, dense in series:
            ax.plot(x, y, marker="o", ms=4, lw=1.8, color=g.color, label=g.legend)
            if g.n > 1:
                low = [a - e for a, e in zip(y, err, strict=True)]
                high = [a + e for a, e in zip(y, err, strict=True)]
                ax.fill_between(x, low, high, color=g.color, alpha=0.2, lw=0)
            if dense is not None:
                ax.axhline(dense, color=g.color, ls=":", lw=1)
        ax.set_xscale("log")
        lo, hi = min(drawn), max(drawn)
        ax.set_xticks(x_ticks(drawn))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(hi * 1.15, lo / 1.15)  # decreasing: pruning goes to the right
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].plot([], [], color="0.4", ls=":", lw=1, label="dense accuracy (same colour)")
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel(xlabel)
    if zoom:
        axes[1, 0].set_ylim(*zoom)
        what = f"zoom: accuracies within {ZOOM_BELOW_BEST:g} points of the best dense network"
        axes[1, 0].set_title(what, fontsize=9)
    _legend_outside(fig, axes[0, 0])
    return _png(fig)


MAX_POINT_TICKS = 12  # up to this many distinct x values, every point gets its own tick


def x_ticks(values: list[float]) -> list[float]:
    """A tick at every drawn x value (values within 6% of a larger one share its tick, so labels do not collide),
    or the round LOG_TICKS in the range when there are more than MAX_POINT_TICKS of them."""
    kept: list[float] = []
    for v in sorted({round(v, 4) for v in values}, reverse=True):
        if all(k / v > 1.06 for k in kept):
            kept.append(v)
    if len(kept) <= MAX_POINT_TICKS:
        return kept
    lo, hi = min(values), max(values)
    return [t for t in LOG_TICKS if lo / 1.5 <= t <= hi * 1.5] or [lo, hi]


def _zoom_range(ys: list[float], dense: list[float]) -> tuple[float, float] | None:
    """(low, high) for a panel on the best accuracies, or None when the full axis already shows them well."""
    top = max(ys)
    reference = max(dense) if dense else top
    near = [y for y in ys if y >= reference - ZOOM_BELOW_BEST]
    if not near or min(ys) >= reference - 3 * ZOOM_BELOW_BEST:
        return None  # nothing collapses far below: one panel is enough
    low, high = min(near), max(top, reference)
    pad = max(0.1, 0.08 * (high - low))
    return low - pad, high + pad


def accuracy_vs_weights(groups: list[Group]) -> bytes | None:
    """Test accuracy against the weights remaining, log scale as in the lottery-ticket papers."""
    return _accuracy_plot(
        groups,
        lambda g, curve: _percent_left([100 * (1 - s.mean) for s, _, _ in curve]),
        "weights remaining (%, log scale)",
        "Accuracy vs weights remaining",
    )


def accuracy_vs_flops(groups: list[Group]) -> bytes | None:
    """The same against the FLOPs remaining, for channel-pruned runs (their networks are physically smaller)."""

    def x_of(g: Group, curve: list) -> list[float] | None:
        flops = [row[2]["flops"] for row in curve]
        if not g.first.structured or any(f is None for f in flops) or not flops[0].mean:
            return None
        return _percent_left([100 * f.mean / flops[0].mean for f in flops])

    return _accuracy_plot(groups, x_of, "FLOPs remaining (% of dense, log scale)", "Accuracy vs FLOPs remaining")


def layer_bars(groups: list[Group]) -> bytes | None:
    """Per-layer sparsity and units with no input in each group's final network (mean over its seeds)."""
    shown = [g for g in groups if any(r.summary.get("layers") for r in g.runs)]
    # module order, as summary.json lists the layers (first appearance across runs)
    names = list(dict.fromkeys(lay.get("name", "?") for g in shown for r in g.runs for lay in r.summary["layers"]))
    if not names:
        return None
    fig, axes = plt.subplots(
        2, 1, figsize=(min(18, max(7, 0.45 * len(names) * max(1, len(shown) / 2) + 3)), 7), sharex=True
    )
    width = 0.8 / len(shown)
    for i, g in enumerate(shown):
        for ax, key in zip(axes, ("sparsity", "units_pruned"), strict=True):
            values = [_layer_value(g, name, key) for name in names]
            pos = [k - 0.4 + width * (i + 0.5) for k in range(len(names))]
            ax.bar(
                pos,
                [100 * (v.mean if v else 0) for v in values],
                width,
                color=g.color,
                label=g.legend,
                yerr=[100 * v.std if v and v.n > 1 else 0 for v in values] if g.n > 1 else None,
            )
    for ax, what in zip(axes, ("weights pruned (%)", "units with no input (%)"), strict=True):
        ax.set_ylabel(what)
        ax.set_ylim(0, 105)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_title("Final network, per layer")
    _legend_outside(fig, axes[0])
    axes[1].set_xticks(
        range(len(names)), [n.removesuffix(".weight") for n in names], rotation=60, ha="right", fontsize=8
    )
    return _png(fig)


def _layer_value(g: Group, name: str, key: str) -> Stat | None:
    return stat(lay.get(key) for r in g.runs for lay in r.summary.get("layers") or [] if lay.get("name") == name)


def training_curves(groups: list[Group]) -> bytes | None:
    """Validation accuracy (or training loss) per epoch, rounds one after another, one panel per group."""
    shown = [g for g in groups if any(r.summary.get("history") for r in g.runs)]
    if not shown:
        return None
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, g in zip(axes.flat, shown, strict=False):
        use_val = any(
            e.get("val_accuracy") is not None
            for r in g.runs
            for h in (r.summary.get("history") or {}).values()
            for e in h
        )
        key, scale = ("val_accuracy", 100) if use_val else ("train_loss", 1)
        for j, r in enumerate(g.runs):
            start, bounds, everything = 0, [], []
            history = r.summary.get("history") or {}
            for k in sorted(history, key=lambda s: int(s) if str(s).isdigit() else 0):
                points = [(start + e.get("epoch", i + 1), e.get(key)) for i, e in enumerate(history[k])]
                points = [(x, scale * y) for x, y in points if y is not None]
                if points:
                    ax.plot(
                        *zip(*points, strict=True),
                        color=g.color,
                        marker="o",
                        ms=3.5,
                        lw=1.6,
                        alpha=1 if j == 0 else 0.6,
                    )
                everything += points
                start += len(history[k])
                bounds.append(start)
            if len(everything) > 1:
                ax.plot(*zip(*everything, strict=True), color=g.color, lw=0.8, alpha=0.35)
            if j == 0:
                for b in bounds[:-1]:
                    ax.axvline(b + 0.5, color="0.75", lw=0.8, ls="--")
        ax.set_title(f"{g.legend} (dashed: next round)", fontsize=9)
        ax.set_xlabel("epoch, rounds one after another")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("validation accuracy (%)" if use_val else "training loss")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    return _png(fig)


def cost_bars(groups: list[Group]) -> bytes | None:
    """Epochs and wall time per run (or sweep mean), when there is something to compare."""
    if len(groups) < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(groups) + 1.8))
    labels = [g.legend for g in groups][::-1]
    for ax, what, fn in ((axes[0], "epochs", lambda r: r.epochs), (axes[1], "wall time (s)", lambda r: r.wall_seconds)):
        values = [g.stat(fn) for g in groups][::-1]
        bars = ax.barh(
            labels,
            [v.mean if v else 0 for v in values],
            color=[g.color for g in groups][::-1],
            xerr=[v.std if v else 0 for v in values],
        )
        ax.bar_label(
            bars,
            [f"{v.mean:.0f}" if v and what == "epochs" else f"{v.mean:.1f}" if v else "-" for v in values],
            padding=3,
            fontsize=8,
        )
        ax.set_xlabel(what)
        ax.margins(x=0.15)
        ax.grid(True, axis="x", alpha=0.3)
    axes[1].set_yticks(range(len(labels)), [""] * len(labels))
    axes[0].set_title("Training cost")
    return _png(fig)
