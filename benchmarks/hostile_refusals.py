"""What crafted model files cost to refuse (issue 27): CPU seconds and peak memory added, one child process per file.

    PYTHONPATH=src python benchmarks/hostile_refusals.py /tmp/hostile

Writes the files into the folder. Each child loads a valid file first (torch's first use is not counted), then the
crafted one with prunekit.load, and reports its own CPU time, its peak RSS (ru_maxrss) and what the file added to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.hostile.crafted_files import make_crafted, make_floor  # noqa: E402
from tests.hostile.model_files import join, make_files, split  # noqa: E402

CHILD = r"""
import resource, sys, time
import prunekit
prunekit.load(sys.argv[1])
before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
try:
    prunekit.load(sys.argv[2])
    verdict = "loaded"
except prunekit.UserError as e:
    verdict = "refused: " + str(e)[len(sys.argv[2]) + 1 :].strip()[:70]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{time.process_time() - start:5.2f} CPU s  peak {peak:4.0f} MiB (+{peak - before / 1024:3.0f})  {verdict}")
"""


def _edit(source: Path, target: Path, edit) -> Path:
    header, body = split(source.read_bytes())
    meta = json.loads(header["__metadata__"]["prunekit"])
    text = edit(meta)
    header["__metadata__"]["prunekit"] = text if isinstance(text, str) else json.dumps(meta)
    target.write_bytes(join(header, body))
    return target


def main(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    files = make_files(root)
    many = ',"x":[' + ",".join(["{}"] * 13_000_000) + "]}"
    crafted = {
        "13 million empty objects": _edit(
            files["dense"], root / "many.safetensors", lambda m: json.dumps(m)[:-1] + many
        ),
        "Infinity width": _edit(
            files["compact"],
            root / "inf.safetensors",
            lambda m: m["modules"]["fc1"]["attrs"].__setitem__("out_features", float("inf")),
        ),
        **{name: path for name, (path, _) in make_crafted(root / "crafted").items()},
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("PRUNEKIT_MAX_MODEL_BYTES", None)
    runs = [(what, path, env) for what, path in crafted.items()]
    runs.append(("all pruned, just under the floor (a load)", make_floor(root / "floor"), env))
    runs.append(
        ("zero, limit raised to 1 GiB (a load)", crafted["zero"], {**env, "PRUNEKIT_MAX_MODEL_BYTES": "1073741824"})
    )
    for what, path, environment in runs:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(files["sparse"]), str(path)],
            capture_output=True,
            text=True,
            env=environment,
        )
        line = done.stdout.strip() or done.stderr.strip().splitlines()[-1]
        print(f"{what:38s} {path.stat().st_size:>11,} B  {line}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hostile_refusals"))
