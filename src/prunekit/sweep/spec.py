"""The sweep file: a base config, a grid of dotted keys and/or a list of extra points, expanded and validated.

    base: lenet300_imp.yaml            # a config path (relative to this file) or an inline mapping
    set: {prune.rounds: 15}            # optional: dotted keys changed for every point (not in run names)
    grid: {prune.tau: [null, 1]}       # the product of these dotted keys
    seeds: [0, 1, 2]                   # optional: every point (grid and runs) once per seed
    runs: [{prune.rewind: lr}]         # optional: extra points, each applied on top of base

Every point is an ordinary run directory named after its overrides (`prune.tau=1,seed=0`: keys sorted, seed last;
characters outside [A-Za-z0-9._=,+-] replaced, long or colliding names shortened with a hash of the overrides), so
names are readable, filesystem-safe, unique and stable when points are added. Each point's config is fully
validated before any run starts; sizes are bounded before anything is expanded.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prunekit import config as config_mod
from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, load_yaml, short
from prunekit.config.checks import check_name

MAX_POINTS = 10_000  # grid product x seeds + runs
MAX_NAME = 120
KEYS = ("base", "set", "grid", "runs", "seeds", "name")
UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


@dataclass(frozen=True)
class Point:
    name: str  # the run directory's name inside the sweep directory
    overrides: dict[str, Any]
    cfg: config_mod.Config


@dataclass(frozen=True)
class Sweep:
    name: str
    points: list[Point]


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "_".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def point_name(overrides: dict[str, Any]) -> str:
    """`key=value` pairs joined by commas (keys sorted, seed last); "base" for no override."""
    if not overrides:
        return "base"
    keys = sorted(overrides, key=lambda k: (k == "seed", k))
    name = UNSAFE.sub("_", ",".join(f"{k}={_text(overrides[k])}" for k in keys))
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME - 9]}-{_hash(overrides)}"
    return name


def _hash(overrides: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UserError(f"sweep {what} must be a mapping of dotted config keys, got {short(value)}")
    return value


def _base(value: Any, here: Path) -> tuple[dict[str, Any], str]:
    """(config values, base name) from a path relative to the sweep file or an inline mapping."""
    if isinstance(value, str):
        path = (here / value).resolve()
        if not path.is_file():
            raise UserError(f"sweep base: config file not found: {path}")
        values = load_yaml(path, "sweep base config") or {}  # the bounded reader configs use
        if not isinstance(values, dict):
            raise UserError(f"sweep base {path}: the config must be a YAML mapping")
        return values, str(values.get("name") or path.stem)
    if value is None:
        return {}, "run"
    values = _mapping(value, "base")
    return values, str(values.get("name") or "run")


def _grid(spec: dict[str, Any], seeds: list[Any]) -> list[dict[str, Any]]:
    grid = _mapping(spec.get("grid") or {}, "grid")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"sweep grid {clip(key, 60)}: give a non-empty list of values, got {short(values)}")
    runs = spec.get("runs") or []
    if not isinstance(runs, list):
        raise UserError(f"sweep runs must be a list of mappings, got {short(runs)}")
    count = (math.prod(len(v) for v in grid.values()) if grid or not runs else 0) + len(runs)
    if count * max(len(seeds), 1) > MAX_POINTS:
        raise UserError(f"the sweep has {count * max(len(seeds), 1):,} points, more than {MAX_POINTS:,}: split it")
    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())] if grid else []
    points = points if grid or runs else [{}]
    points += [dict(_mapping(r, f"runs[{i}]")) for i, r in enumerate(runs)]
    if seeds:
        if any("seed" in p for p in points):
            raise UserError("sweep seeds: the grid or a run also sets seed; give seeds in one place")
        points = [{**p, "seed": s} for p in points for s in seeds]
    return points


def load(path: str | Path) -> Sweep:
    """Read, expand and validate a sweep file (every point's config) without touching any run directory."""
    path = Path(path)
    spec = load_yaml(path, "sweep file") or {}  # bounded: no aliases or tags, size, depth and values limited
    spec = _mapping(spec, "file")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise UserError(f"sweep file {path}: unknown keys {clip(str(unknown), 120)} (known: {', '.join(KEYS)})")
    seeds = spec.get("seeds") or []
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise UserError(f"sweep seeds must be a list of integers, got {short(seeds)}")
    base, base_name = _base(spec.get("base"), path.parent)
    changed = _mapping(spec.get("set") or {}, "set")
    points = _grid(spec, seeds)
    varied = sorted({k for p in points for k in p} & set(changed))
    if varied:
        raise UserError(f"sweep key {varied[0]} is both in set and in the grid or runs: give it in one place")
    base = config_mod._merge(base, changed)  # every point's base; run names show only what varies
    name = spec.get("name") or path.stem
    if not isinstance(name, str):
        raise UserError(f"sweep file {path}: name must be text, got {short(name)}")
    check_name(name, "sweep name")  # the default --out is runs/NAME: one plain path component
    return Sweep(name, expand(base, str(changed.get("name") or base_name), points, sweep_name=name))


def expand(
    base: dict[str, Any], base_name: str, overrides: list[dict[str, Any]], sweep_name: str | None = None
) -> list[Point]:
    """One validated Point per override set; names made unique; two points with one config are an error. MLflow
    logging puts every run of the sweep in one experiment named after the sweep unless the config names one."""
    names = [point_name(o) for o in overrides]
    clashes = {n for n in names if names.count(n) > 1}
    names = [f"{n[: MAX_NAME - 9]}-{_hash(o)}" if n in clashes else n for n, o in zip(names, overrides, strict=True)]
    points, seen = [], {}
    for name, over in zip(names, overrides, strict=True):
        label = ",".join(f"{k}={_text(v)}" for k, v in sorted(over.items()) if k not in ("seed", "name"))
        values = config_mod._merge(base, {"name": f"{base_name},{label}" if label else base_name, **over})
        try:
            cfg = config_mod.from_dict(values)
            if cfg.log.mlflow and cfg.log.mlflow_experiment is None and sweep_name:
                cfg = cfg.replace(**{"log.mlflow_experiment": sweep_name})
            from prunekit.runner.experiment import check_config

            check_config(cfg)
            _check_names(cfg)
        except UserError as e:
            raise UserError(f"sweep point {name}: {e}") from None
        key = config_mod.dump(cfg.replace(name="-"))
        if key in seen:
            raise UserError(f"sweep points {seen[key]} and {name} give the same config; drop one")
        seen[key] = name
        points.append(Point(name, over, cfg))
    return points


def _check_names(cfg: config_mod.Config) -> None:
    """Model and dataset names exist (what can be checked without loading data)."""
    from prunekit.data import DATASETS
    from prunekit.models import MODELS

    MODELS.get(cfg.model.name)
    DATASETS.get(cfg.data.name)
