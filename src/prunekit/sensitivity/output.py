"""A sensitivity scan written out: sensitivity.md (table), sensitivity.csv (one row per point), sensitivity.json
(everything) and sensitivity.png (accuracy vs ratio, one line per layer, legend outside the axes)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from prunekit.common.atomic import atomic_write_bytes, atomic_write_text
from prunekit.report.tables import Table
from prunekit.sensitivity.scan import Sensitivity


def table(sens: Sensitivity) -> Table:
    unit = "channels" if sens.structure == "channel" else "weights"
    header = ["layer", unit] + [f"{100 * r:g}%" for r in sens.ratios]
    rows = [
        [name, f"{size:,}"] + [f"{100 * a:.2f}" for a in sens.accuracy[name]]
        for name, size in zip(sens.layers, sens.sizes, strict=True)
    ]
    what = "channels removed from the layer" if sens.structure == "channel" else "weights of the layer pruned"
    note = (
        f"Accuracy (%) with one layer pruned at a time ({what}, by {sens.criterion}), no retraining; "
        f"dense {100 * sens.dense_accuracy:.2f}%; scan took {sens.seconds:.1f} s."
    )
    return Table("Sensitivity: accuracy with one layer pruned", header, rows, note)


def csv_text(sens: Sensitivity) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["layer", "size", "ratio", "accuracy", "drop"])
    for name, size in zip(sens.layers, sens.sizes, strict=True):
        for r, a in zip(sens.ratios, sens.accuracy[name], strict=True):
            writer.writerow([name, size, r, round(a, 6), round(sens.dense_accuracy - a, 6)])
    return buf.getvalue()


def figure(sens: Sensitivity) -> bytes:
    from prunekit.report.figures import _png, plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    cmap = plt.get_cmap("tab20" if len(sens.layers) > 10 else "tab10")
    xs = [0.0] + [100 * r for r in sens.ratios]
    for i, name in enumerate(sens.layers):
        ys = [100 * sens.dense_accuracy] + [100 * a for a in sens.accuracy[name]]
        ax.plot(xs, ys, marker="o", ms=3, lw=1.5, color=cmap(i % cmap.N), label=name)
    ax.axhline(100 * sens.dense_accuracy, color="0.4", ls=":", lw=1, label="dense")
    what = "channels removed" if sens.structure == "channel" else "weights pruned"
    ax.set_xlabel(f"{what} from one layer (%)")
    ax.set_ylabel("accuracy, no retraining (%)")
    ax.set_title("Sensitivity: each layer pruned alone")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _png(fig)


def write(sens: Sensitivity, out: Path) -> list[Path]:
    """Write the table, CSV, JSON and figure into `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = table(sens)
    md = f"# {t.title}\n\n{t.markdown()}\n\n_{t.note}_\n\n![accuracy vs ratio](sensitivity.png)\n"
    return [
        atomic_write_text(out / "sensitivity.md", md),
        atomic_write_text(out / "sensitivity.csv", csv_text(sens)),
        atomic_write_text(out / "sensitivity.json", json.dumps(sens.to_dict(), indent=1) + "\n"),
        atomic_write_bytes(out / "sensitivity.png", figure(sens)),
    ]
