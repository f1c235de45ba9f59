"""The source documents' own tables, each shown beside prunekit's numbers for the runs a report covers.

The values are the documents' (docs/references.md): the AIMP poster, the course slides' results table, the
lottery-ticket report with Frankle & Carbin's LeNet-300-100 schedule, and both tables of the PyTorch L1-unstructured
evaluation. A table appears only when the report holds runs of the source's network on the source's dataset (an
MNIST toy CNN is set beside no ResNet-50 on ImageNet); its note says where prunekit's setting differs (epochs,
recipe), since the sources' settings are not re-created here.
"""

from __future__ import annotations

from prunekit.report.sweep import Group, Stat, speedups
from prunekit.report.tables import Table, num_stat, pct, pct_stat

SPARSITIES = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)
# PyTorch evaluation, torch.nn.utils.prune.l1_unstructured without retraining: (dense, accuracy at SPARSITIES)
TORCH_EVAL = {
    "lenet5": ("LeNet-5", "MNIST", 97.94, (97.96, 97.26, 95.76, 93.69, 90.00, 51.22, 22.62, 9.59, 10.28)),
    "lenet_300_100": ("LeNet-300-100", "MNIST", 97.91, (97.93, 97.90, 97.95, 97.40, 96.44, 81.25, 37.84, 14.83, 9.75)),
    # the ResNets: "~10%" from 60% on
    "resnet18": ("ResNet-18", "CIFAR-10", 89.36, (88.59, 17.39, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0)),
    "resnet50": ("ResNet-50", "CIFAR-10", 89.90, (89.31, 19.42, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0)),
}
# AIMP poster: CIFAR-10, a CNN, p = 0.2 for 20 rounds, T = 160 epochs: (method, final accuracy %, speedup vs IMP)
POSTER = [
    ("IMP+WR", 90.64, "1.00x"),
    ("AIMP τ=50 (WR)", 90.71, "2.88x*"),
    ("AIMP τ=40 (WR)", 90.82, "3.47x"),
    ("AIMP τ=30 (WR)", 90.39, "4.38x*"),
    ("AIMP τ=20 (WR)", 90.01, "5.93x*"),
    ("IMP+LRR", 93.68, "1.00x"),
    ("AIMP (LRR)", 93.62, "-"),
]
# course slides: (method, network, dataset, baseline %, pruned %, params (M) or None, params pruned %)
COURSE = [
    ("PCAS", "ResNet-56", "CIFAR-10", 93.04, 93.58, 0.39, 53.7),
    ("PCAS", "ResNet-50", "CIFAR-100", 74.66, 73.83, 4.02, 76.5),
    ("AMC", "ResNet-50", "CIFAR-10", 93.53, 93.55, None, 60.0),
    ("ThiNet", "ResNet-50", "ImageNet", 72.88, 72.04, None, 33.7),
]
# Frankle & Carbin 2019, LeNet-300-100 layer-wise 20% per round (10% output layer): weights left % after k rounds
LTH_WEIGHTS_LEFT = {3: 51.3, 7: 21.1, 9: 13.5, 15: 3.6, 18: 1.9, 20: 1.2}


def source_tables(groups: list[Group]) -> list[Table]:
    """Every source table the report's runs can be set beside (none when nothing compares)."""
    tables = [t for models, title in TORCH_EVAL_TABLES for t in _torch_eval(groups, models, title)]
    tables += [_poster(groups), _lottery(groups), _course(groups)]
    return [t for t in tables if t is not None]


TORCH_EVAL_TABLES = (
    (("lenet_300_100", "lenet5"), "PyTorch L1-unstructured evaluation, MNIST (source) beside prunekit"),
    (("resnet18", "resnet50"), "PyTorch L1-unstructured evaluation, CIFAR-10 ResNets (source) beside prunekit"),
)


def _near(stat: Stat | None, value: float) -> bool:
    return stat is not None and abs(stat.mean - value) < 5e-4


def _drop(dense: float | None, value: float | None) -> str:
    """Points lost from the network's own dense accuracy (fractions in, points out); blank when either is missing."""
    return "" if dense is None or value is None else f"{100 * (dense - value):.2f}"


def _matches(g: Group, model: str, dataset: str) -> bool:
    """Whether a group's runs are the source's network on the source's data (only then is a source shown)."""
    return g.first.model == model and _dataset(g.first.dataset) == dataset


def _torch_eval(groups: list[Group], models: tuple[str, ...], title: str) -> list[Table]:
    """The source's table beside the runs, and the same rows as drops from each network's own dense accuracy (the
    source's dense networks are less accurate than prunekit's, so absolute accuracies alone flatter prunekit)."""
    ours = [
        g
        for g in groups
        if g.first.method == "oneshot"
        and not g.first.structured
        and any(_matches(g, m, TORCH_EVAL[m][1]) for m in models if m == g.first.model)
    ]
    if not ours:
        return []
    header = ["network", "run", "dense", *[f"{100 * s:g}%" for s in SPARSITIES]]
    rows, drops = [], []
    for model in (m for m in models if any(g.first.model == m for g in ours)):
        name, dataset, dense, values = TORCH_EVAL[model]
        rows.append([f"{name} ({dataset})", "source: torch prune, no retraining", f"{dense:.2f}", *map(_two, values)])
        drops.append([*rows[-1][:2], *[_drop(dense / 100, v / 100) for v in values]])
        for g in (g for g in ours if g.first.model == model):
            curve = g.curve()
            at = {s: next(((acc, o) for sp, acc, o in curve if _near(sp, s)), (None, {})) for s in SPARSITIES}
            dense_acc = pct_stat(curve[0][1]) if curve else "-"
            base = curve[0][1].mean if curve and curve[0][1] else None
            label = f"{name} ({_dataset(g.first.dataset)})"
            rows.append([label, f"prunekit {g.legend}: no retraining", dense_acc])
            rows[-1] += [pct_stat(o.get("pruned_accuracy")) if o else "" for _, o in at.values()]
            pruned = [o.get("pruned_accuracy") if o else None for _, o in at.values()]
            drops.append([*rows[-1][:2], *[_drop(base, p and p.mean) for p in pruned]])
            epochs = g.first.prune.get("retrain_epochs")
            if epochs != 0:
                rows.append([label, f"prunekit {g.legend}: + {epochs} epochs retraining", dense_acc])
                rows[-1] += [pct_stat(acc) if acc else "" for acc, _ in at.values()]
                drops.append([*rows[-1][:2], *[_drop(base, acc and acc.mean) for acc, _ in at.values()]])
    note = (
        "test accuracy %; the source pruned every layer but the last one, layer by layer, with "
        "torch.nn.utils.prune.l1_unstructured and did not retrain; prunekit's no-retraining rows are the same "
        "protocol on networks trained with prunekit's recipe (the source's is unknown); a dataset in parentheses "
        "other than the source's means the setting differs"
    )
    drop_note = (
        "points lost from each row's own dense accuracy (dense - pruned, of the means over seeds; negative: above "
        "dense): the source's dense networks and prunekit's differ, so compare these, not the absolute accuracies"
    )
    drop_title = title.replace(" beside prunekit", ": drop from dense, beside prunekit")
    drop_header = [h for h in header if h != "dense"]
    return [Table(title, header, rows, note), Table(drop_title, drop_header, drops, drop_note)]


DATASETS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "minicifar": "MiniCIFAR"}


def _dataset(name: str) -> str:
    return DATASETS.get(name, name)


NETWORKS = {"resnet56": "ResNet-56", "resnet50": "ResNet-50"}  # the course's networks, by prunekit's model names


def _network(model: str) -> str:
    return NETWORKS.get(model, model)


def _two(value: float) -> str:
    return f"{value:.2f}"


POSTER_MODELS = ("conv2", "conv4", "conv6", "vgg11", "vgg16", "vgg19", "resnet20", "resnet32", "resnet56", "resnet18")


def _poster(groups: list[Group]) -> Table | None:
    """The poster's CIFAR-10 CNN: shown beside IMP runs of a CNN on CIFAR-10."""
    ours = [
        g
        for g in groups
        if g.first.method == "imp"
        and not g.first.structured
        and g.first.model in POSTER_MODELS
        and _dataset(g.first.dataset) == "CIFAR-10"
    ]
    if not ours:
        return None
    header = ["source", "method", "setting", "final acc %", "final sparsity %", "epochs", "speedup vs IMP"]
    rows = [["AIMP poster", m, "CIFAR-10 CNN, p=0.2 x 20, T=160", f"{a:.2f}", "98.85", "", s] for m, a, s in POSTER]
    found = speedups(groups)
    for g in ours:
        p, r = g.first.prune, g.first
        epochs = (r.config.get("train") or {}).get("epochs")
        setting = f"{_dataset(r.dataset)} {r.model}, p={p.get('rate')} x {p.get('rounds') or '-'}, T={epochs}"
        speed = found.get(g.label)
        rows.append(
            [
                "prunekit",
                g.first.method_label,
                setting,
                pct_stat(g.stat(lambda run: run.final_accuracy)),
                pct_stat(g.stat(lambda run: run.final_sparsity)),
                num_stat(g.stat(lambda run: run.epochs)),
                num_stat(speed[1], "{:.2f}x") if speed else "1.00x" if not g.first.is_aimp else "-",
            ]
        )
    note = (
        "speedups: wall time of IMP over AIMP (prunekit: measured, against the IMP run on the same model and "
        "dataset whose config differs least); * = derived from the poster's T = 160 as 20·160 / (19τ + 160), the "
        "formula its 3.47x for τ=40 fits. prunekit's networks and epochs are far smaller: compare the trends"
    )
    return Table("AIMP poster (source) beside prunekit", header, rows, note)


def _lottery(groups: list[Group]) -> Table | None:
    ours = [
        g
        for g in groups
        if g.first.method == "imp" and g.first.prune.get("rewind") == "init" and _matches(g, "lenet_300_100", "MNIST")
    ]
    if not ours:
        return None
    # One row per run and round (not two columns per run): the table keeps five columns however many runs it holds,
    # so it fits a 1280 px page; a round no run reaches keeps one row with the source's value alone.
    header = ["rounds k", "Frankle & Carbin: weights left %", "run", "weights left %", "test acc %"]
    curves = [(g, g.curve()) for g in ours]
    rows = []
    for k, left in LTH_WEIGHTS_LEFT.items():
        reached = [(g, curve[k]) for g, curve in curves if k < len(curve)]
        for g, (sparsity, acc, _) in reached:
            rows.append([str(k), f"{left:.1f}", g.legend, pct(1 - sparsity.mean), pct_stat(acc)])
        if not reached:
            rows.append([str(k), f"{left:.1f}", "-", "-", "-"])
    note = (
        "the lottery-ticket report and Frankle & Carbin 2019: tickets (weights rewound to theta_0) match or "
        "beat the dense accuracy down to 3.6%; the paper trains ~55 epochs per "
        "round, prunekit's runs the epochs of their config"
    )
    return Table("Lottery tickets on LeNet-300-100 (source schedule) beside prunekit", header, rows, note)


def _course(groups: list[Group]) -> Table | None:
    """The course's rows whose network and dataset a channel-pruned run of the report shares, beside those runs."""
    pairs = {(n, d) for _, n, d, *_ in COURSE}
    ours = [g for g in groups if g.first.structured and (_network(g.first.model), _dataset(g.first.dataset)) in pairs]
    if not ours:
        return None
    shared = {(_network(g.first.model), _dataset(g.first.dataset)) for g in ours}
    header = [
        "source",
        "method",
        "network",
        "dataset",
        "baseline %",
        "pruned %",
        "drop (points)",
        "params (M)",
        "params pruned %",
    ]
    rows = [
        ["course slides", m, n, d, f"{b:.2f}", f"{a:.2f}", f"{b - a:.2f}", "-" if p is None else f"{p:.2f}", f"{r:.1f}"]
        for m, n, d, b, a, p, r in COURSE
        if (n, d) in shared
    ]
    for g in ours:
        curve = g.curve()
        dense, final = (curve[0][2]["params"], curve[-1][2]["params"]) if curve else (None, None)
        removed = 1 - final.mean / dense.mean if dense and final and dense.mean else None
        before, after = g.stat(lambda r: r.dense_accuracy), g.stat(lambda r: r.final_accuracy)
        rows.append(
            [
                "prunekit",
                f"{g.first.method_label} ({g.legend})",
                g.first.model,
                _dataset(g.first.dataset),
                pct_stat(before),
                pct_stat(after),
                _drop(before and before.mean, after and after.mean),
                num_stat(final and Stat(final.mean / 1e6, final.std / 1e6, final.n), "{:.3f}"),
                pct(removed, 1),
            ]
        )
    note = (
        "top-1 test accuracy; drop = baseline - pruned in points (negative: the pruned network is better), the "
        "comparison that holds when baselines differ; the sources prune CIFAR/ImageNet ResNets, prunekit's rows are "
        "the report's runs"
    )
    return Table("Course slides' results (source) beside prunekit", header, rows, note)
