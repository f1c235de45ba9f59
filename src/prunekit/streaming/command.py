"""`prunekit prune-checkpoint`: a checkpoint directory pruned streamed, from flags or from a small YAML file.

    prunekit prune-checkpoint DIR --out DIR_PRUNED --criterion wanda --sparsity 0.5 [--pattern 2:4]
    prunekit prune-checkpoint stream.yaml [--out ...]          # the same keys in a file; flags win

The YAML keys are the flags' names (source, out, criterion, sparsity, pattern, scope, allocation, min_density,
ignore, activations; order: the calibration order inside a block, block or sequential) and a `calibration` mapping
(source, batches, seq_len, seed). Calibration `source`: `synthetic` (uniform random token ids, seeded), `pystdlib`
(the Python standard library's sources) or `text:PATH` (a UTF-8 file); text is tokenised with the checkpoint's own
tokenizer files (never with remote code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from prunekit.common.errors import UserError

MAX_CONFIG = 2**20


@dataclass(frozen=True)
class Calibration:
    source: str = "synthetic"
    batches: int = 16
    seq_len: int = 512
    seed: int = 0


@dataclass(frozen=True)
class StreamConfig:
    source: str = ""
    out: str = ""
    criterion: str = "wanda"
    sparsity: float = 0.5
    pattern: str = "unstructured"
    scope: str = "layerwise"
    allocation: str = "uniform"
    min_density: float = 0.0
    ignore: list[str] | None = None
    activations: str = "auto"
    order: str = "block"
    calibration: Calibration = field(default_factory=Calibration)


def load_config(path: Path) -> StreamConfig:
    """A StreamConfig from YAML; unknown keys are errors that name them."""
    import yaml

    if path.stat().st_size > MAX_CONFIG:
        raise UserError(f"{path} is larger than {MAX_CONFIG:,} bytes: not a prune-checkpoint config")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of keys")
    calibration = raw.pop("calibration", None) or {}
    if not isinstance(calibration, dict):
        raise UserError(f"{path}: calibration must be a mapping (source, batches, seq_len, seed)")
    _known(raw, StreamConfig, path)
    _known(calibration, Calibration, path)
    return checked(StreamConfig(**{**raw, "calibration": Calibration(**calibration)}), path)


def checked(cfg: StreamConfig, where: Path | str = "prune-checkpoint") -> StreamConfig:
    """The config, after checking each value's type (a YAML file can hold anything)."""
    kinds = {"sparsity": (int, float), "min_density": (int, float), "batches": int, "seq_len": int, "seed": int}
    values = {**{f.name: getattr(cfg, f.name) for f in fields(cfg)}, **vars(cfg.calibration)}
    for name, value in values.items():
        kind = kinds.get(name, str if name not in ("ignore", "calibration") else object)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise UserError(f"{where}: {name} must be a {getattr(kind, '__name__', 'number')}, got {value!r}")
    if cfg.ignore is not None and not (isinstance(cfg.ignore, list) and all(isinstance(x, str) for x in cfg.ignore)):
        raise UserError(f"{where}: ignore must be a list of layer names")
    return cfg


def _known(raw: dict[str, Any], kind: type, path: Path) -> None:
    names = {f.name for f in fields(kind)} - {"calibration"}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise UserError(f"{path}: unknown key {unknown[0]!r}; known: {', '.join(sorted(names))}")


def with_flags(cfg: StreamConfig, top: dict[str, Any], calibration: dict[str, Any]) -> StreamConfig:
    """The config with every flag that was given (not None) replacing its key."""
    top = {k: v for k, v in top.items() if v is not None}
    calib = replace(cfg.calibration, **{k: v for k, v in calibration.items() if v is not None})
    return checked(replace(cfg, **top, calibration=calib))


def calibration_batches(root: Path, calib: Calibration) -> list[dict[str, torch.Tensor]]:
    """`calib.batches` batches of one sequence of `calib.seq_len` token ids each."""
    if calib.batches < 1 or calib.seq_len < 1:
        raise UserError(f"calibration needs batches >= 1 and seq_len >= 1, got {calib.batches}, {calib.seq_len}")
    if calib.source == "synthetic":
        vocab = _vocab(root)
        g = torch.Generator().manual_seed(calib.seed)
        return [{"input_ids": torch.randint(vocab, (1, calib.seq_len), generator=g)} for _ in range(calib.batches)]
    ids = _tokens(root, _text(calib.source, calib.batches * calib.seq_len * 8))
    need = calib.batches * calib.seq_len
    if ids.numel() < need:
        raise UserError(f"calibration text gives {ids.numel()} tokens, fewer than batches x seq_len = {need}")
    return [{"input_ids": ids[i * calib.seq_len : (i + 1) * calib.seq_len].unsqueeze(0)} for i in range(calib.batches)]


def _vocab(root: Path) -> int:
    import json

    try:
        return int(json.loads((root / "config.json").read_text())["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{root / 'config.json'} gives no vocab_size for synthetic calibration tokens") from None


def _text(source: str, max_chars: int) -> str:
    if source == "pystdlib":
        from prunekit.data.pystdlib import read_bytes, source_files, stdlib_root

        return bytes(read_bytes(source_files(stdlib_root())["train"], max_chars)).decode("utf-8", "replace")
    if source.startswith("text:"):
        path = Path(source[5:])
        try:
            with path.open("rb") as f:
                return f.read(max_chars).decode("utf-8", "replace")
        except OSError as exc:
            raise UserError(f"cannot read calibration text {path}: {exc.strerror or exc}") from None
    raise UserError(f"calibration source must be synthetic, pystdlib or text:PATH, got {source!r}")


def _tokens(root: Path, text: str) -> torch.Tensor:
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(root, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{root} has no usable tokenizer for text calibration ({first}): use synthetic") from None
    return torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)


def run_command(cfg: StreamConfig, log: Callable[[str], None]) -> dict[str, Any]:
    from prunekit.streaming.driver import prune_checkpoint

    if not cfg.source or not cfg.out:
        raise UserError("prune-checkpoint needs a checkpoint directory and --out (or source and out in the config)")
    source = Path(cfg.source)
    batches = calibration_batches(source, cfg.calibration) if cfg.criterion != "magnitude" else []
    return prune_checkpoint(
        source,
        Path(cfg.out),
        cfg.sparsity,
        criterion=cfg.criterion,
        batches=batches,
        scope=cfg.scope,
        allocation=cfg.allocation,
        min_density=cfg.min_density,
        ignore=cfg.ignore,
        pattern=cfg.pattern,
        activations=cfg.activations,
        calibration=cfg.order,
        log=log,
    )
