"""The broad check of issue 26: `prunekit.prune_channels` at one fraction on every Hugging Face family the
installed `transformers` builds from a tiny config (tests/hf/tiny_models.py) and on the construct networks of
tests/structured/construct_nets.py, each call bounded by a wall-clock alarm. Per network: pruned, refused (with
the one-line reason) or a raw exception, the seconds, the parameters before and after, and for every pruned
network whether its compact file loads back exactly (same tensors, same outputs, ties still one tensor).

    python benchmarks/architectures.py [--fraction 0.5] [--bound 30] [--only llama t5 ...] [--follow-advice]

prints JSON. --follow-advice: after a refusal that says "add '<pattern>' to ignore", call again once with that
`ignore` and report the second result as `after_advice`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import prunekit  # noqa: E402
from prunekit.common.batches import call_model  # noqa: E402
from prunekit.export.compact import load_compact, save_compact  # noqa: E402
from prunekit.pruning.structured.inputs import output_tensors  # noqa: E402
from tests.structured.construct_nets import CONSTRUCT_NETS  # noqa: E402


class Bound(Exception):
    pass


def networks() -> list[tuple[str, object, object]]:
    """(name, factory, example) for every network checked; the factory builds the same weights each call."""
    nets = [(n, f, e) for n, f, e in CONSTRUCT_NETS]
    try:
        from tests.hf.tiny_models import available, build
    except ImportError:  # no transformers: the construct networks only
        return nets
    for family in available():
        nets.append((f"hf:{family}", lambda f=family: build(f)[0], lambda f=family: build(f)[1]))
    return nets


def ties(model: torch.nn.Module) -> list[list[str]]:
    holders: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        holders.setdefault(id(p), []).append(name)
    return sorted(names for names in holders.values() if len(names) > 1)


def round_trip(model: torch.nn.Module, factory, example) -> bool:
    """Compact file written and read back: identical state, identical outputs, the same ties."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_compact(model, Path(tmp) / "m.safetensors")
        loaded = load_compact(path, builder=lambda: _seeded(factory))
    state, saved = loaded.state_dict(), model.state_dict()
    if state.keys() != saved.keys() or not all(torch.equal(state[k], saved[k]) for k in saved):
        return False
    with torch.no_grad():
        a, b = output_tensors(call_model(loaded, example)), output_tensors(call_model(model.eval(), example))
    return ties(loaded) == ties(model) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _short(message: str) -> str:
    """A refusal's start (what failed) and end (the advice), when it is long."""
    return message if len(message) <= 420 else f"{message[:250]} ... {message[-150:]}"


def _seeded(factory):
    torch.manual_seed(0)
    return factory()


def check(name: str, factory, example, fraction: float, bound: int, ignore: tuple[str, ...] = ()) -> dict:
    model = _seeded(factory).eval()
    x = example()
    row: dict = {"network": name, "params": sum(p.numel() for p in model.parameters())}

    def alarm(*_):
        raise Bound(f"no result in {bound} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(bound)
    start = time.monotonic()
    try:
        report = prunekit.prune_channels(model, fraction, example_inputs=copy.copy(x), ignore=list(ignore))
        row.update(status="pruned", params_after=report.params[1], kept_whole=len(report.whole))
        auto = {re.search(r"add '([^']+)' to ignore to skip", why) for why in report.whole.values()}
        row["kept_automatically"] = sorted({m.group(1) for m in auto if m})  # patterns of groups that broke the model
    except prunekit.UserError as exc:
        row.update(status="refused", reason=_short(str(exc)))
    except Bound as exc:
        row.update(status="timeout", reason=str(exc))
    except Exception as exc:  # what the issue counts: a raw exception is a bug
        row.update(status="raw", reason=f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    row["seconds"] = round(time.monotonic() - start, 2)
    if row["status"] == "pruned":
        try:
            row["round_trip_exact"] = round_trip(model, factory, x)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            row["round_trip_exact"] = False
            row["round_trip_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        row["ties"] = ties(model)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--bound", type=int, default=30)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--follow-advice", action="store_true")
    args = parser.parse_args()
    rows = []
    for name, factory, example in networks():
        if args.only and name.removeprefix("hf:") not in args.only:
            continue
        rows.append(check(name, factory, example, args.fraction, args.bound))
        advice = re.search(r"add '([^']+)' to ignore", rows[-1].get("reason", ""))
        if args.follow_advice and rows[-1]["status"] == "refused" and advice:
            again = check(name, factory, example, args.fraction, args.bound, (advice.group(1),))
            rows[-1]["after_advice"] = {"ignore": [advice.group(1)], **again}
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    pruned = [r for r in rows if r["status"] == "pruned"]
    summary = {
        "fraction": args.fraction,
        "bound_s": args.bound,
        "networks": len(rows),
        "counts": counts,
        "slowest_s": max((r["seconds"] for r in rows), default=0.0),
        "round_trip_exact": sum(bool(r.get("round_trip_exact")) for r in pruned),
        "round_trip_checked": len(pruned),
    }
    print(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
