"""`prunekit.prunable(model)`: the tensors a prune will touch, the rule that chose each, and what it leaves out.

The rules are in prunekit.pruning.coverage, the output layer in prunekit.pruning.outputs. `Coverage` prints as a
short table; `prunekit.prune` returns its masks as a `Pruned` dict whose `.report` says what was covered, what was
left out and why, how the output layer was found, and the sparsity over the covered tensors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.common.wording import plural
from prunekit.pruning.coverage import Covered, LeftOut, covered, select
from prunekit.pruning.outputs import OutputLayers, output_layers


@dataclass
class Coverage:
    """What a prune covers: `tensors` (in module order), `left_out` (every other parameter, with why), and the
    output layers it protects (`output`; None when include_output)."""

    tensors: list[Covered]
    left_out: list[LeftOut]
    output: OutputLayers | None = None

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tensors]

    def summary(self) -> list[str]:
        total = sum(_numel(t.shape) for t in self.tensors)
        by_rule = Counter(t.rule for t in self.tensors)
        lines = [
            f"covered: {plural(len(self.tensors), 'tensor')}, {total:,} weights "
            f"({', '.join(f'{n} {r}' for r, n in by_rule.items())})"
        ]
        shared = [t for t in self.tensors if t.aliases]
        lines += [f"shared: {t.name} is also {', '.join(t.aliases)} (one tensor, one mask)" for t in shared]
        if self.output is not None:
            lines.append(f"protected: {self.output.describe()}")
        reasons = Counter(x.reason for x in self.left_out)
        for reason, n in reasons.items():
            names = [x.name for x in self.left_out if x.reason == reason]
            shown = ", ".join(names[:4]) + (f", ... ({n} in all)" if n > 4 else "")
            lines.append(f"left out: {shown}: {reason}")
        return lines

    def __str__(self) -> str:
        rows = [f"{'tensor':<36} {'shape':<16} {'rule':<15} unit"]
        rows += [f"{t.name:<36} {'x'.join(map(str, t.shape)):<16} {t.rule:<15} {t.unit}" for t in self.tensors]
        return "\n".join(rows + self.summary())

    def as_dict(self) -> dict[str, Any]:
        return {
            "tensors": [
                {"name": t.name, "shape": list(t.shape), "rule": t.rule, "unit": t.unit, "aliases": list(t.aliases)}
                for t in self.tensors
            ],
            "left_out": [{"name": x.name, "reason": x.reason} for x in self.left_out],
            "output_layers": None if self.output is None else list(self.output.modules),
            "output_rule": None if self.output is None else self.output.how,
        }


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def prunable(
    model: nn.Module,
    *,
    include_embeddings: bool = False,
    include_output: bool = False,
    ignore: Iterable[str] | None = None,
    example_inputs: Any = None,
) -> Coverage:
    """Every tensor a prune of `model` touches, with the rule that chose it, and what it leaves out, with why.

    The output layer is found from `example_inputs` (one batch of model inputs) when the model does not declare it;
    without them it is the last layer in registration order (see prunekit.pruning.outputs).
    """
    out = None if include_output else output_layers(model, example_inputs)
    kept, left = select(
        model,
        ignore=ignore or (),
        include_embeddings=include_embeddings,
        output_modules=out.modules if out is not None else (),
    )
    return Coverage([covered(c) for c in kept], left, out)


@dataclass
class PruneReport:
    """What one `prunekit.prune` call did: its coverage, the sparsity over the covered tensors, and how."""

    coverage: Coverage
    sparsity: float
    kept: int
    total: int
    settings: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        how = ", ".join(f"{k} {v}" for k, v in self.settings.items())
        head = f"pruned to sparsity {self.sparsity:.2%} over the covered tensors ({self.kept:,} of {self.total:,} kept"
        return "\n".join([f"{head}; {how})", *self.coverage.summary()])


class Pruned(dict):
    """The masks of a prune (a plain dict name -> bool tensor, usable wherever masks are) with a `.report`."""

    report: PruneReport

    def __init__(self, masks: dict[str, Tensor], report: PruneReport) -> None:
        super().__init__(masks)
        self.report = report


def coverage_record(coverage: Coverage) -> dict[str, Any]:
    """The compact form summary.json keeps: counts by rule, shared tensors, output layers, left out by reason."""
    left: dict[str, list[str]] = {}
    for x in coverage.left_out:
        left.setdefault(x.reason, []).append(x.name)
    return {
        "tensors": len(coverage.tensors),
        "weights": sum(_numel(t.shape) for t in coverage.tensors),
        "rules": dict(Counter(t.rule for t in coverage.tensors)),
        "shared": {t.name: list(t.aliases) for t in coverage.tensors if t.aliases},
        "output_layers": None if coverage.output is None else list(coverage.output.modules),
        "output_rule": None if coverage.output is None else coverage.output.how,
        "left_out": left,
    }


def check_names(coverage: Coverage) -> list[str]:
    if not coverage.tensors:
        reasons = sorted({x.reason for x in coverage.left_out})
        raise UserError(f"nothing to prune: no covered tensor left ({'; '.join(reasons[:3])})")
    return coverage.names
