"""How tests/test_docs.py runs the shell blocks of README.md and docs/*.md for real: the documented fill-in.

Every `prunekit` command runs as the page writes it (`prunekit ARGS` as `prunekit.cli.main(ARGS)`, the function the
console script calls, the commands of a block in order in one fresh process, tests/doc_forks.py; `torchrun` as
`python -m torch.distributed.run`), in a fresh directory holding a copy of configs/. The test fills in only this:
- TINY: the copied configs (run configs and sweep bases) are shrunk so that every run takes seconds: built-in
  image data becomes synthetic data of the same shape (64 training, 32 test, 16 validation examples), the Python
  stdlib bytes a 20 kB slice, one epoch per round, small batches, one thread. Rounds, methods, models, sparsities
  and every option the command line gives stay as written (`export runs/lth --round 15` needs the 20 rounds).
- mypackage: the reader's own package of docs/user_models.md (`mypackage.nets:make_net`, `mypackage.data:make_data`)
  and its `config.yaml` (the page's YAML block, plus TINY's training settings and `name: x`, so that the run lands
  in `runs/x`, which the page's next commands read) are written by `write_mypackage`.
- `runs/lth`: the README's quickstart run is made once (`quickstart_run`, by the README's own first command) and
  copied into every block that names it: docs/sensitivity.md reads it, and the README's block, whose first command
  makes it, resumes it finished (that command's comment: "run, or resume after an interrupt").
Commands that cannot run here are in NOT_RUN with the reason: each one left out is reported as a warning, and a
block of which no command runs is reported as skipped with the reasons; none is left out silently.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.doc_forks import Forks

ROOT = Path(__file__).resolve().parent.parent

NOT_RUN: tuple[tuple[str, str], ...] = (  # (regular expression over the command line, why it does not run here)
    (
        r"^make (setup|demo|test|test-slow|bench|llm|smollm2)\b",
        "make targets create .venv and install packages "
        "(network; the shared environment must not be repointed); the target is checked to exist",
    ),
    (r"--nproc_per_node [3-9]", "needs that many GPUs (NCCL) and the CIFAR-10 files"),
    (r"--nnodes [2-9]", "needs several machines"),
    (r"--executor ray", "starts a Ray cluster (minutes, GBs); tests/sweep/test_sweep.py runs the Ray executor"),
    (r"\bSWEEP\.yaml\b", "SWEEP.yaml stands for the reader's sweep file"),
    (
        r"sensitivity_resnet56_cifar10",
        "scans each of ResNet-56's 57 layers at every ratio: CPU-minutes even on tiny data",
    ),
)

TINY_DATA = {
    "mnist": {"name": "synthetic", "shape": [1, 28, 28], "classes": 10},
    "cifar10": {"name": "synthetic", "shape": [3, 32, 32], "classes": 10},
    "minicifar": {"name": "synthetic", "shape": [3, 32, 32], "classes": 10},
    "cifar100": {"name": "synthetic", "shape": [3, 32, 32], "classes": 100},
}
TINY_SIZES = {"train_size": 64, "test_size": 32, "val_size": 16}


def not_run(words: list[str]) -> str | None:
    """Why a command does not run here, or None when it does."""
    line = " ".join(words)
    return next((why for pattern, why in NOT_RUN if re.search(pattern, line)), None)


def tiny(cfg: dict) -> dict:
    """A run config (a dict) shrunk as TINY says; keys it does not have stay absent, except the data sizes."""
    data = dict(cfg.get("data") or {})
    name = data.get("name", "mnist")
    if name in TINY_DATA:
        data = {**{k: v for k, v in data.items() if k not in ("root", "augment")}, **TINY_DATA[name], **TINY_SIZES}
    elif name == "synthetic":
        data |= TINY_SIZES
    elif name == "pystdlib":
        data |= {"max_bytes": 20000, "seq_len": min(int(data.get("seq_len", 128)), 32)}
    train = dict(cfg.get("train") or {})
    train |= {"epochs": 1, "batch_size": min(int(train.get("batch_size", 60)), 16), "eval_batch_size": 64}
    prune = dict(cfg.get("prune") or {})
    for key in ("retrain_epochs", "dense_epochs", "layer_epochs"):
        if prune.get(key):
            prune[key] = 1
    if prune.get("episodes"):
        prune |= {"episodes": 4, "warmup_episodes": 2}
    return {**cfg, "data": data, "train": train, "prune": prune, "threads": 1}


def shrink_configs(configs: Path) -> None:
    """Every run config and sweep base under `configs` (the working directory's copy) shrunk by `tiny`."""
    for path in configs.rglob("*.yaml"):
        values = yaml.safe_load(path.read_text())
        if not isinstance(values, dict):
            continue
        if "base" in values or "grid" in values or "seeds" in values:
            if isinstance(values.get("base"), dict):
                values["base"] = tiny(values["base"])
        elif any(k in values for k in ("model", "data", "train", "prune")):
            values = tiny(values)
        path.write_text(yaml.safe_dump(values, sort_keys=False))


NETS = """
from torch import nn


def make_net(width: int = 64, num_classes: int = 10, input_shape=(1, 28, 28)) -> nn.Module:
    inputs = 1
    for n in input_shape:
        inputs *= n
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, num_classes))
"""
DATA = """
import torch

from prunekit.data import Dataset


def make_data(root: str = "") -> Dataset:
    gen = torch.Generator().manual_seed(0)
    def split(n: int):
        return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 4, (n,), generator=gen)
    return Dataset("mine", *split(64), *split(16), *split(32), num_classes=4, input_shape=(1, 8, 8), augment=False)
"""


def write_mypackage(cwd: Path, page_yaml: str) -> None:
    """The reader's package of docs/user_models.md and its config.yaml (the page's YAML block, made tiny)."""
    (cwd / "mypackage").mkdir()
    (cwd / "mypackage" / "__init__.py").write_text("")
    (cwd / "mypackage" / "nets.py").write_text(NETS)
    (cwd / "mypackage" / "data.py").write_text(DATA)
    cfg = yaml.safe_load(page_yaml)
    cfg["data"].pop("workers", None)  # worker processes: seconds each to start, for 4 batches
    cfg = {"name": "x", **cfg, "train": {"epochs": 1, "batch_size": 16}, "prune": {"method": "oneshot"}}
    (cwd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


DRIVER = """
import shlex, sys
from prunekit.cli import main
for line in sys.argv[1:]:
    print("$ prunekit", line, flush=True)
    code = main(shlex.split(line))
    if code:
        sys.exit(f"exit {code}: prunekit {line}")
"""


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}


def run_prunekit(forks: Forks, lines: list[list[str]], cwd: Path) -> None:
    """`prunekit ARGS` for each ARGS, in order, in one process; AssertionError with the output on a failure."""
    if lines:
        status, output = forks.run(DRIVER, cwd, ["-c", *(shlex.join(a) for a in lines)], timeout=900)
        assert status == 0, output[-4000:]


def run_torchrun(words: list[str], cwd: Path) -> None:
    """A `torchrun ...` command as `python -m torch.distributed.run ...` (the same launcher), a real subprocess."""
    argv = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    done = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])


def quickstart_run(forks: Forks, where: Path) -> Path:
    """The README's first command, `prunekit run configs/lth_lenet300.yaml --out runs/lth`, on TINY configs."""
    shutil.copytree(ROOT / "configs", where / "configs")
    shrink_configs(where / "configs")
    run_prunekit(forks, [["run", "configs/lth_lenet300.yaml", "--out", "runs/lth"]], where)
    return where / "runs" / "lth"
