"""Rewrite imports of the module paths that issue 25 moved (src/prunekit's packages), in place.

For branches and user code written against the old layout: `from prunekit.errors import UserError` becomes
`from prunekit.common.errors import UserError`, `from prunekit import checkpoint` becomes
`from prunekit.store import checkpoint`, and dotted mentions in strings (monkeypatch targets) follow. Names that
moved between modules (not rewritten here): `is_transposed_linear` (pruning.masks -> pruning.coverage, still
importable from masks), `Member`/`ChannelGroup` (structured.groups -> structured.channel_group, still importable
from groups), `MODELS`/`init_weights`/`flat_features` (models -> models.registry, still importable from models),
`RoundPlan`/`METHODS` (pruning.methods -> pruning.methods.plan, still importable), `agree_on_masks` and
`agree_on_architecture` (prunekit.distributed -> prunekit.runner.agree). Run ruff's import sorting afterwards.

    python scripts/rewrite_moved_imports.py FILE_OR_DIR [...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MOVED = {
    "prunekit.errors": "prunekit.common.errors",
    "prunekit.wording": "prunekit.common.wording",
    "prunekit.safe_text": "prunekit.common.safe_text",
    "prunekit.registry": "prunekit.common.registry",
    "prunekit.threads": "prunekit.common.threads",
    "prunekit.progress": "prunekit.common.progress",
    "prunekit.batches": "prunekit.common.batches",
    "prunekit.user_code": "prunekit.common.user_code",
    "prunekit.example_spec": "prunekit.common.example_spec",
    "prunekit.latency": "prunekit.common.latency",
    "prunekit.hf_cache": "prunekit.common.hf_cache",
    "prunekit.config_compress": "prunekit.config.compress",
    "prunekit.export.safety": "prunekit.common.safety",
    "prunekit.export.atomic": "prunekit.common.atomic",
    "prunekit.config_sections": "prunekit.config.sections",
    "prunekit.config_prune": "prunekit.config.prune",
    "prunekit.config_checks": "prunekit.config.checks",
    "prunekit.pruning.ratios_file": "prunekit.config.ratios_file",
    "prunekit.store": "prunekit.store.directory",
    "prunekit.checkpoint": "prunekit.store.checkpoint",
    "prunekit.run_files": "prunekit.store.files",
    "prunekit.run_summary": "prunekit.store.summary",
    "prunekit.experiment": "prunekit.runner.experiment",
    "prunekit.pruning.amc.runner": "prunekit.runner.amc",
    "prunekit.pruning.structured.rounds": "prunekit.runner.channel_rounds",
    "prunekit.distributed.agree": "prunekit.runner.agree",
    "prunekit.flops": "prunekit.pruning.flops",
    "prunekit.export.lowbit": "prunekit.pruning.lowbit",
    "prunekit.semi_structured": "prunekit.sparse_inference.semi_structured",
}
DOTTED = re.compile(
    r"\b("
    + "|".join(re.escape(o) for o in sorted(MOVED, key=len, reverse=True))
    + r")(?!\w)(?!\.(?:directory|checkpoint|files|summary|run_config)\b)"
    + r"(?! import (?:checkpoint|files|summary|run_config)\b)"
)
FROM = re.compile(r"^([ \t]*)from (prunekit(?:\.\w+)*) import ([^()\n#]+?)([ \t]*#.*)?$", re.M)


def _from(match: re.Match[str]) -> str:
    """`from prunekit import a, b` with a moved module among the names: one line per moved module."""
    indent, package, names, comment = match.group(1), match.group(2), match.group(3), match.group(4) or ""
    keep, moved = [], []
    for item in (s.strip() for s in names.split(",") if s.strip()):
        name, _, alias = (part.strip() for part in item.partition(" as "))
        new = MOVED.get(f"{package}.{name}")
        if new is None:
            keep.append(item)
            continue
        parent, _, short = new.rpartition(".")
        alias = alias or (name if short != name else "")
        moved.append(f"{indent}from {parent} import {short}" + (f" as {alias}" if alias else ""))
    if not moved:
        return match.group(0)
    return "\n".join(([f"{indent}from {package} import {', '.join(keep)}{comment}"] if keep else []) + moved)


def rewrite(text: str) -> str:
    text = DOTTED.sub(lambda m: MOVED[m.group(1)], text)  # not the new prunekit.store.<module> paths
    return FROM.sub(_from, text)


def main(paths: list[str]) -> None:
    for root in map(Path, paths):
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            text = path.read_text()
            new = rewrite(text)
            if new != text:
                path.write_text(new)
                print(f"rewrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
