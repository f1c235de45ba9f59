"""Write docs/config.md, the config reference: every key with its type, default and one line, read from the config
dataclasses themselves (their fields, defaults and the comments beside them), so the reference cannot drift.

    python scripts/config_reference.py            # rewrite docs/config.md
    python scripts/config_reference.py --check    # exit 1 when docs/config.md differs (tests/test_config_reference.py)

A field's line is its own comment (on its line, or the comment lines just after it when the next field has its
own); a comment block above fields without one (a section such as "# synthetic") is their context. Keys whose
code carries no comment take their line from EXTRA below; the test fails for a key with no line at all.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import tokenize
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "config.md"

# keys whose dataclass field has no comment in the code
EXTRA = {
    "name": "the run's name (reports group seeds by it); default: the config file's stem",
    "seed": "seeds the initial weights, the data order and every random draw of the run",
    "model": "the network (section below)",
    "data": "the dataset (section below)",
    "train": "the training recipe (section below)",
    "prune": "the pruning method (section below)",
    "log": "loggers beside the run directory (section below)",
    "train.epochs": "epochs of training per round (round 0: the dense network; see prune.retrain_epochs)",
    "train.batch_size": "examples per step: the global batch, however many processes run",
    "train.lr": "learning rate (the peak of a schedule)",
    "train.weight_decay": "L2 penalty of the optimizer",
    "train.gamma": "step schedule: the factor the lr is multiplied by at each milestone",
    "train.eval_batch_size": "examples per batch when evaluating",
    "data.shape": "synthetic: the shape of one example, e.g. [1, 28, 28] (C, H, W)",
    "data.classes": "synthetic: number of classes",
    "data.train_size": "synthetic: training examples",
    "data.test_size": "synthetic: test examples",
    "data.per_class": "minicifar: training images per class",
    "prune.ratios_file": "a JSON file of per-layer ratios (`prunekit sensitivity` and AMC write them); entries of "
    "prune.layer_ratio override the file's",
}

INTRO = """# Config reference

Every key of a run's config (YAML, or `--set key=value` on the command line), with its type, its default and one
line. Written by `python scripts/config_reference.py` from the config dataclasses in `src/prunekit/` (fields,
defaults and the comments beside them); `tests/test_config_reference.py` fails when this page differs from what
the script writes, so it cannot drift from the code. Unknown keys are errors; a run directory's `config.yaml` holds
every key with its value. Ranges and cross-key checks are enforced when the config is read (one-line errors).

Channel runs (`prune.structure: channel`): `prune.sparsity` and `prune.rate` are fractions of the prunable
channels; the run records as `sparsity` the fraction of prunable weights removed, beside `channel_fraction` and
`flops_removed`.
"""


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line (without '#'), for every comment in `source`."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _is_section(line: str) -> bool:
    """A comment block that names a section ("pystdlib: ...", "amc (He et al. 2018): ...") rather than continuing
    the comment of the field above it."""
    return ":" in line[:60] or len(line.split()) <= 2


def field_lines(cls: type, prefix: str = "") -> dict[str, str]:
    """Field name -> its one line, from the comments in the class's source (see the module docstring)."""
    source = inspect.getsource(inspect.getmodule(cls))
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    fields = [(s.target.id, s.lineno, s.end_lineno) for s in node.body if isinstance(s, ast.AnnAssign)]
    comments = _comments(source)
    own = {name: [comments[i] for i in range(a, b + 1) if i in comments] for name, a, b in fields}
    section: dict[str, str] = {}
    current = ""
    for k, (name, _, end) in enumerate(fields):
        section.setdefault(name, current)
        if k + 1 == len(fields):
            break
        following = fields[k + 1][0]
        block = [comments[i] for i in range(end + 1, fields[k + 1][1]) if i in comments]
        if not block:
            continue
        nested = _nested(following, cls)
        if own[name] and (own[following] or nested) and not _is_section(block[0]):
            own[name] += block  # the comment of this field goes on below it
        elif not own[following]:
            own[following], current = block, ""  # the comment above a field without one is its own
        else:
            current = " ".join(block)  # a section: the context of the fields below, up to the next block
            section[following] = current
    out = {}
    for name, _, _ in fields:
        text, where = " ".join(own[name]), section.get(name, "")
        if len(text.split()) <= 2:  # nothing, or a section's name only ("synthetic"): the line written here
            text = EXTRA.get(prefix + name, text)
        if where and text and ":" not in text[:20]:  # the section's name before a field's own line
            out[name] = f"{where.split(':')[0]} — {text}"
        else:
            out[name] = text or where
    return out


def _nested(name: str, cls: type) -> bool:
    """Whether field `name` of `cls` is a config section of its own (a dataclass)."""
    return any(f.name == name and dataclasses.is_dataclass(_default(f)) for f in dataclasses.fields(cls))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, line) for every field of `cls`; a nested section is one row pointing below."""
    lines = field_lines(cls, prefix)
    annotations = {
        s.target.id: ast.unparse(s.annotation)
        for s in ast.parse(inspect.getsource(cls)).body[0].body
        if isinstance(s, ast.AnnAssign)
    }
    out = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        nested = dataclasses.is_dataclass(_default(f)) or annotations[f.name].endswith("Config")
        default = "(section)" if nested else _yaml(_default(f))
        line = lines.get(f.name, "")
        out.append((key, annotations[f.name], default, line))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole page."""
    sys.path.insert(0, str(ROOT / "src"))
    from prunekit.config import Config

    sections = [("Top level", Config, ""), *_sections(Config, "")]
    parts = [INTRO]
    for title, cls, prefix in sections:
        parts.append(f"## {title}\n")
        doc = inspect.getdoc(cls) if cls is not Config else None
        if doc and not doc.startswith(cls.__name__ + "("):
            parts.append(" ".join(doc.split()) + "\n")
        table = ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, kind, default, line in rows(cls, prefix):
            if default == "(section)":
                continue
            table.append(f"| `{key}` | `{_cell(kind)}` | `{_cell(default)}` | {_cell(line)} |")
        parts.append("\n".join(table) + "\n")
    return "\n".join(parts)


def _sections(cls: type, prefix: str) -> list[tuple[str, type, str]]:
    """(title, class, key prefix) of every nested config section below `cls`, depth first (prune.compress too)."""
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(_default(f)):
            sub = _section_class(cls, f.name)
            out += [(f"`{prefix}{f.name}`", sub, f"{prefix}{f.name}."), *_sections(sub, f"{prefix}{f.name}.")]
    return out


def _section_class(cls: type, name: str) -> type:
    return type(_default(next(f for f in dataclasses.fields(cls) if f.name == name)))


def missing_lines() -> list[str]:
    """Keys the reference has no line for (a new field without a comment, and none in EXTRA)."""
    sys.path.insert(0, str(ROOT / "src"))
    from prunekit.config import Config

    keys = rows(Config)
    for _, cls, prefix in _sections(Config, ""):
        keys += rows(cls, prefix)
    return [key for key, _, default, line in keys if not line and default != "(section)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/config.md is not what this writes")
    args = parser.parse_args()
    text = render()
    if args.check:
        same = OUT.is_file() and OUT.read_text() == text
        print(
            "docs/config.md is up to date" if same else "docs/config.md differs: run python scripts/config_reference.py"
        )
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
