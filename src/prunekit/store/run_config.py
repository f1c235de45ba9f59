"""config.yaml read back from a run directory, and checked against the run's own summary.json and checkpoints.

A run directory's config.yaml is the resolved config (every section written out). One that is empty, truncated,
hand-edited or copied from another run would build a task that does not fit the run's checkpoints, and fail deep in
a matmul; here it is one line naming the file and the key that disagrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit import config as config_mod
from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, load_yaml, short

SECTIONS = ("model", "data", "train", "prune")
AGREE = {"method": "prune.method", "structure": "prune.structure", "criterion": "prune.criterion"}


def load(run_dir: Path, overrides: list[str] = (), summary: dict[str, Any] | None = None) -> config_mod.Config:
    """The run's config with `overrides`; refused in one line when it is not a full config or disagrees with
    `summary` (the run's checked summary.json) on the model, the dataset or the method."""
    path = Path(run_dir) / "config.yaml"
    raw = load_yaml(path, "config file")
    if not isinstance(raw, dict) or any(not isinstance(raw.get(s), dict) for s in SECTIONS):
        missing = [s for s in SECTIONS if not isinstance(raw, dict) or not isinstance(raw.get(s), dict)]
        raise UserError(
            f"{path} is damaged: {', '.join(missing)} missing (a run's config.yaml holds every section); "
            "rerun the run or restore the file"
        )
    cfg = config_mod.load(path, list(overrides))
    if summary is not None:
        for field, key in AGREE.items():
            ours, theirs = _value(cfg, key), summary.get(field)
            if theirs is not None and ours != theirs:
                raise UserError(
                    f"{path} is damaged or from another run: {key} is {short(ours, 40)} but summary.json says "
                    f"{short(theirs, 40)}"
                )
        arch = summary.get("arch") if isinstance(summary.get("arch"), dict) else {}
        if arch.get("name") is not None and arch.get("name") != cfg.model.name:
            raise UserError(
                f"{path} is damaged or from another run: model.name is {clip(cfg.model.name, 60)!r} but summary.json's "
                f"arch is {clip(str(arch.get('name')), 60)!r}"
            )
    return cfg


def _value(cfg: config_mod.Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)
