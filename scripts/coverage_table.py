"""What a 90% prune covers on each hand-written network of the tests, as a Markdown table (docs/results/).

    PYTHONPATH=. .venv/bin/python scripts/coverage_table.py

For each network: the tensors covered by default (and by which rules), the output layers traced from its outputs,
the sparsity over the covered tensors after `prunekit.prune(model, 0.9)`, and the share of all its weight matrices
(every tensor a rule names, embeddings and output layers included) that is then zero; the last column asks for
everything (include_embeddings and include_output).

`--old-api` measures a prunekit without coverage rules (before `prunekit.prunable` existed): only
`prunekit.prune(model, 0.9)`, the share of zeros counted over the same layer types; run it against that checkout,
e.g. `PYTHONPATH=/path/to/old/src:. .venv/bin/python scripts/coverage_table.py --old-api`.
"""

from __future__ import annotations

import sys
import warnings

import torch

import prunekit
from tests.user_nets import NETS

nn = torch.nn


def zero_share(model: nn.Module) -> float:
    """Zeros over every weight matrix of Conv, ConvTranspose, Linear, attention, recurrent and embedding layers."""
    found = {}
    for m in model.modules():
        for n, p in m.named_parameters(recurse=False):
            matrix = isinstance(m, nn.modules.conv._ConvNd | nn.Linear | nn.Embedding) and n == "weight"
            matrix |= isinstance(m, nn.MultiheadAttention) and n.endswith("proj_weight")
            matrix |= isinstance(m, nn.RNNBase) and n.startswith("weight_")
            if matrix:
                found[id(p)] = p
    return sum(int((p == 0).sum()) for p in found.values()) / sum(p.numel() for p in found.values())


def old_api() -> None:
    print("| network | tensors masked | all matrices zero |\n|---|---:|---:|")
    for name, factory, _ in NETS:
        torch.manual_seed(0)
        model = factory()
        try:
            masks = prunekit.prune(model, 0.9)
        except Exception as e:  # the old API's failures are what is measured
            print(f"| {name} | {type(e).__name__}: {e} | |")
            continue
        print(f"| {name} | {len(masks)} | {zero_share(model):.1%} |")


def main() -> None:
    warnings.simplefilter("ignore")
    if "--old-api" in sys.argv:
        return old_api()
    from tests.user_nets_more import MORE_NETS  # written with the coverage rules

    print("| network | covered tensors (rules) | weights | output layers | sparsity over covered | all matrices zero "
          "| all matrices zero, everything included |")  # fmt: skip
    print("|---|---|---:|---|---:|---:|---:|")
    for name, factory, example in NETS + MORE_NETS:
        torch.manual_seed(0)
        model, x = factory(), example()
        masks = prunekit.prune(model, 0.9, example_inputs=x)
        coverage = masks.report.coverage
        rules: dict[str, int] = {}
        for t in coverage.tensors:
            rules[t.rule] = rules.get(t.rule, 0) + 1
        default = zero_share(model)
        torch.manual_seed(0)
        model = factory()
        prunekit.prune(model, 0.9, example_inputs=x, include_embeddings=True, include_output=True)
        print(
            f"| {name} | {len(coverage.tensors)} ({', '.join(f'{n} {r}' for r, n in rules.items())}) | "
            f"{masks.report.total:,} | {', '.join(coverage.output.modules)} | {masks.report.sparsity:.2%} | "
            f"{default:.1%} | {zero_share(model):.1%} |"
        )


if __name__ == "__main__":
    main()
