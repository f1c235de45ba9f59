"""Channel pruning of hand-written networks (tests/user_nets.py, tests/structured/channel_nets.py): what
prunekit.prune_channels removes from each at one fraction, what stays whole and why, and the largest output
difference from the original with the removed weights zeroed (computed here from tensor values, independently of
the library's own check), relative to the largest output. No timing: see the structured benchmark for speed.

    python benchmarks/channels_any_model.py [--fraction 0.5] [--scope layerwise] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import prunekit  # noqa: E402
from prunekit.common.batches import call_model  # noqa: E402
from prunekit.pruning.structured.inputs import output_tensors  # noqa: E402
from tests.structured.channel_nets import CHANNEL_NETS  # noqa: E402
from tests.user_nets import NETS  # noqa: E402


def zero_difference(original: torch.nn.Module, pruned: torch.nn.Module, example: object) -> float:
    """Largest |pruned - reference| / max(1, max |reference|) over the outputs, the reference being the original with
    every entry the pruned tensors do not keep set to zero; entries are matched by value, which is exact because
    every value is first made distinct."""
    reference = copy.deepcopy(original)
    after = {**dict(pruned.named_parameters()), **dict(pruned.named_buffers())}
    with torch.no_grad():
        for name, t in [*reference.named_parameters(), *reference.named_buffers()]:
            if t.is_floating_point():
                t.masked_fill_(~torch.isin(t, after[name]), 0.0)
        a = output_tensors(call_model(pruned.eval(), example))
        b = output_tensors(call_model(reference.eval(), example))
    return max(float((x - y).abs().max()) / max(1.0, float(y.abs().max())) for x, y in zip(a, b, strict=True))


def distinct(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.is_floating_point():
                values = (torch.randperm(t.numel(), generator=gen).float() + 1) / t.numel()
                t.copy_(values.view(t.shape) * (1.0 if "running_var" in name else 0.3))


def row(name: str, factory, example, fraction: float, scope: str) -> dict:
    torch.manual_seed(0)
    model = factory()
    distinct(model)
    original = copy.deepcopy(model)
    x = example()
    try:
        report = prunekit.prune_channels(model, fraction, example_inputs=x, scope=scope)
    except prunekit.UserError as exc:
        return {"network": name, "refused": str(exc)}
    return {
        "network": name,
        "params": report.params[0],
        "params_after": report.params[1],
        "pruned": {g: f"{a}->{b}" for g, (a, b) in report.widths.items()},
        "whole": report.whole,
        "relative_difference_from_zeroed": zero_difference(original, model, x),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--scope", default="layerwise")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row(name, f, ex, args.fraction, args.scope) for name, f, ex in NETS + CHANNEL_NETS]
    if args.json:
        print(json.dumps({"fraction": args.fraction, "scope": args.scope, "rows": rows}, indent=1))
        return
    print("| network | params | after | ratio | rel. diff vs zeroed | pruned groups (channels) | kept whole |")
    print("|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        if "refused" in r:
            print(f"| {r['network']} | | | | | refused: {r['refused']} | |")
            continue
        pruned = ", ".join(f"{g} {w}" for g, w in r["pruned"].items())
        whole = "; ".join(f"{g}: {why}" for g, why in r["whole"].items())
        ratio = r["params_after"] / r["params"]
        print(
            f"| {r['network']} | {r['params']:,} | {r['params_after']:,} | {ratio:.3f} | "
            f"{r['relative_difference_from_zeroed']:.1e} | {pruned} | {whole} |"
        )


if __name__ == "__main__":
    main()
