"""prunekit run | report | export | inspect | sensitivity.

Bad input exits 2 with one line on stderr; --debug shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from prunekit.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors are bad input too: one line, exit 2
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prunekit", description="Neural-network pruning: run, report, export, inspect.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) an experiment")
    run.add_argument("config", type=Path, help="experiment YAML")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set prune.sparsity=0.95 (repeatable)",
    )
    run.add_argument("--out", type=Path, help="run directory (default: runs/<name>)")

    report = sub.add_parser("report", help="compare runs: report.md and figures")
    report.add_argument("runs", nargs="+", type=Path, help="run directories, or directories to search below")
    report.add_argument("--out", type=Path, required=True)

    export = sub.add_parser("export", help="write a round's network as a model file")
    export.add_argument("source", type=Path, help="run directory or model file")
    export.add_argument("--round", type=int, default=None, help="round to export (default: the last)")
    export.add_argument("--format", required=True, choices=["dense", "sparse", "compact", "onnx"])
    export.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    export.add_argument("--out", type=Path, required=True)

    inspect = sub.add_parser("inspect", help="per-layer shapes, sparsity, params, FLOPs and bytes")
    inspect.add_argument("source", type=Path, help="run directory or model file")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument(
        "--latency",
        action="store_true",
        help="also time CPU inference: PyTorch and onnxruntime, batch 1 and 32, 2 threads",
    )

    sens = sub.add_parser("sensitivity", help="prune each layer alone at a range of ratios: table, figure, ratios")
    sens.add_argument("source", type=Path, help="run directory (scans its trained round 0) or config (trains it first)")
    sens.add_argument("--out", type=Path, required=True)
    sens.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sens.add_argument("--structure", choices=["channel", "unstructured"], help="default: the config's")
    sens.add_argument("--ratios", help="comma-separated fractions removed (default 0.1,0.2,...,0.9)")
    sens.add_argument("--tolerance", type=float, help="ratios file: max accuracy drop per layer (0.01 = 1 point)")
    sens.add_argument("--budget", help="ratios file: KIND=FRACTION kept, KIND flops|params|latency|channels|weights")
    sens.add_argument("--examples", type=int, help="validation examples to evaluate on (default: all)")
    return parser


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from prunekit.sensitivity.command import run_command

    result = run_command(
        args.source,
        args.out,
        args.overrides,
        args.structure,
        args.ratios,
        args.tolerance,
        args.budget,
        args.examples,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print("\n".join(f"wrote {f}" for f in result["files"]))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from prunekit import config as config_mod
    from prunekit.experiment import run

    cfg = config_mod.load(args.config, args.overrides)
    out = args.out or Path("runs") / cfg.name
    summary = run(cfg, out, log=lambda line: print(line, file=sys.stderr, flush=True))
    from prunekit.report.tables import rounds_table

    print(rounds_table(summary))
    print(f"\nrun directory: {out}\nreport: {out / 'report.html'} ({out / 'report.md'})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from prunekit.report import find_runs, write_report

    path = write_report(find_runs(args.runs), args.out)
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from prunekit.inspection import export_file as export

    path = export(args.source, args.round, args.format, args.out, args.dtype)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from prunekit.inspection import describe, render

    info = describe(args.source, latency=args.latency)
    print(json.dumps(info, indent=1) if args.json else render(info))
    return 0


COMMANDS = {
    "run": cmd_run,
    "report": cmd_report,
    "export": cmd_export,
    "inspect": cmd_inspect,
    "sensitivity": cmd_sensitivity,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    warnings.filterwarnings("default", message="layer collapse")
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as e:
        if debug:
            raise
        print(f"prunekit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunekit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        print(
            f"prunekit: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
