"""The experiment config: frozen dataclasses are the single source of truth; YAML and --set fill them.

Every key has a default; unknown keys and values of the wrong type or range are `UserError`s that name the key.
Every number is finite and inside a documented range (the MAX_* bounds in checks.py), so the loops the runner
and the methods run over a config (rounds, epochs, batches, synthetic examples) are bounded by validated values.
The sections live beside this file: sections.py (model, data, train, log) and prune.py (prune); this
file holds the whole Config and how YAML and --set overrides become one. Every name is importable from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip, finite, load_yaml, parse_yaml, short
from prunekit.config.checks import (  # noqa: F401  (the bounds and checks, importable from here as always)
    FREE_FORM_DEPTH,
    FREE_FORM_NODES,
    FREE_FORM_TEXT,
    MAX_BATCH,
    MAX_CLASSES,
    MAX_EPOCHS,
    MAX_EXAMPLE_VALUES,
    MAX_EXAMPLES,
    MAX_LIST,
    MAX_NAME,
    MAX_ROUNDS,
    MAX_STEPS,
    MAX_STRING,
    MAX_SYNTHETIC_VALUES,
    MAX_THREADS,
    check_free_form,
    check_name,
)
from prunekit.config.checks import bounded as _bounded
from prunekit.config.checks import check as _check
from prunekit.config.prune import (  # noqa: F401
    REWIND,
    STRUCTURE_DEFAULTS,  # noqa: F401
    PruneConfig,
    rounds_needed,
)
from prunekit.config.sections import DataConfig, LogConfig, ModelConfig, TrainConfig


@dataclass(frozen=True)
class Config:
    name: str = "run"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # CPU threads for PyTorch; null = prunekit.common.threads.choose_threads: physical cores
    # (at most torch's default), 1 when the load average says the machine is busy, with a warning. 2 threads fighting
    # other processes for 2 cores can run 10x slower than 1. Part of the config as it changes float sums.
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        check_name(self.name)
        _bounded(self.seed, "seed", 0, 2**63 - 1)
        _check(self.device in ("auto", "cpu", "cuda"), "device", f"auto | cpu | cuda, got {short(self.device)}")
        _bounded(self.threads, "threads", 1, MAX_THREADS)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted keys replaced, e.g. replace(**{"prune.sparsity": 0.5}). A criterion or scope that was
        the old structure's default follows a new `prune.structure` (as it does in a config that leaves it out)."""
        values = self.to_dict()
        structure = overrides.get("prune.structure", self.prune.structure)
        if structure != self.prune.structure:
            old = dict(zip(("criterion", "scope"), STRUCTURE_DEFAULTS.get(self.prune.structure, ()), strict=False))
            for key, default in old.items():
                if values["prune"].get(key) == default and f"prune.{key}" not in overrides:
                    values["prune"][key] = None
        return from_dict(_merge(values, dict(overrides)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _merge(base: dict[str, Any], dotted: dict[str, Any]) -> dict[str, Any]:
    out = _plain(base)
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = value
    return out


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(f"config key {key}: expected {_name(hint)}, got {short(value)}")
    if dataclasses.is_dataclass(hint):
        _check(isinstance(value, dict), key, f"expected a mapping, got {short(value)}")
        return _build(hint, value, key + ".")
    if origin is tuple:
        _check(isinstance(value, list | tuple), key, f"expected a list, got {short(value)}")
        _check(len(value) <= MAX_LIST, key, f"at most {MAX_LIST} entries, got {len(value):,}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _check(isinstance(value, dict), key, f"expected a mapping, got {short(value)}")
        _check(len(value) <= MAX_LIST, key, f"at most {MAX_LIST} entries, got {len(value):,}")
        return {str(k): _coerce(v, args[1], f"{key}.{clip(str(k), 40)}") for k, v in value.items()}
    if hint is Any:  # free-form user values, checked by check_free_form
        return value
    if hint is float:
        _check(
            isinstance(value, int | float) and not isinstance(value, bool),
            key,
            f"expected a number, got {short(value)}",
        )
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        _check(finite(number), key, f"must be a finite number, got {short(value)}")
        return number
    if hint is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {short(value)}")
        return value
    if hint is bool:
        _check(isinstance(value, bool), key, f"expected true or false, got {short(value)}")
        return value
    if hint is str:
        _check(isinstance(value, str), key, f"expected a string, got {short(value)}")
        _check(len(value) <= MAX_STRING, key, f"at most {MAX_STRING:,} characters, got {len(value):,}")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def _name(hint: Any) -> str:
    return " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(hint)) or str(hint)


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in known]
    if unknown:
        raise UserError(_unknown_keys(unknown, known, prefix))
    kwargs = {key: _coerce(value, hints[key], prefix + key) for key, value in values.items()}
    return cls(**kwargs)


def _unknown_keys(unknown: list[Any], known: list[str], prefix: str) -> str:
    """One line naming every unknown key of a section (at most 10), each with its closest known key."""
    return _unknown_line([(prefix, key, known) for key in unknown])


def _unknown_line(found: list[tuple[str, Any, list[str]]]) -> str:
    """One line naming unknown keys (at most 10), each with the closest key of its section."""
    parts, guessed = [], True
    for prefix, key, known in found[:10]:
        close = difflib.get_close_matches(str(key)[:MAX_NAME], known, n=1)
        guessed = guessed and bool(close)
        parts.append(f"{prefix}{clip(str(key), 40)}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    plural = "s" if len(found) > 1 else ""
    sections = {prefix for prefix, _, _ in found[:10]}
    tail = "" if guessed or len(sections) > 1 else f" (known: {', '.join(found[0][2])})"
    return f"unknown config key{plural} {', '.join(parts)}{more}{tail}"


def _all_unknown(cls: type, values: Any, prefix: str = "") -> list[tuple[str, Any, list[str]]]:
    """(section prefix, key, the section's keys) of every unknown key in `values`, in every section."""
    if not isinstance(values, dict):
        return []
    known = [f.name for f in dataclasses.fields(cls)]
    hints = typing.get_type_hints(cls)
    found = [(prefix, key, known) for key in values if key not in known]
    for key, value in values.items():
        if key in known and dataclasses.is_dataclass(hints[key]):
            found += _all_unknown(hints[key], value, f"{prefix}{key}.")
    return found


def from_dict(values: dict[str, Any]) -> Config:
    _check(isinstance(values, dict), "(top level)", "the config must be a YAML mapping")
    unknown = _all_unknown(Config, values)
    if unknown:  # every unknown key of every section in one line, not the first one found
        raise UserError(_unknown_line(unknown))
    return _with_ratios_file(_build(Config, values))


RATIOS_FILE_LIMIT = 1 << 20


def _with_ratios_file(cfg: Config) -> Config:
    """prune.ratios_file read into prune.layer_ratio (its explicit entries win), so the run records what it used."""
    path = cfg.prune.ratios_file
    if path is None:
        return cfg
    from prunekit.config.ratios_file import read_ratios

    ratios = {**read_ratios(Path(path), RATIOS_FILE_LIMIT), **cfg.prune.layer_ratio}
    return dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, layer_ratio=ratios))


def parse_override(text: str) -> tuple[str, Any]:
    """`prune.sparsity=0.95` -> ("prune.sparsity", 0.95); the value is read as YAML (same limits as a file)."""
    if "=" not in text:
        raise UserError(f"--set expects KEY=VALUE, got {short(text)}")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or len(parts) > 8 or not all(parts):
        raise UserError(f"--set {clip(key, 40)}: a key is names joined by single dots, e.g. prune.sparsity")
    return key, parse_yaml(raw, f"--set {clip(key, 40)}")


def load(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults), apply --set overrides, validate everything."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        values = load_yaml(path, "config file")
        values = {} if values is None else values
        _check(isinstance(values, dict), str(path), "the config must be a YAML mapping")
        values.setdefault("name", path.stem)
    return from_dict(_merge(values, dict(parse_override(o) for o in overrides)))


def differences(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs (log.* keys excepted: they change no result)."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v and k not in ("layer_rate", "layer_ratio", "budget"):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = v
        return out

    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k) and not k.startswith("log."))


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
