"""The README's Python API snippet runs as written, in a fresh interpreter, and prints the sparsity it promises
(tests/test_docs.py runs every other block of the README and docs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_readme_python_snippet_runs_as_written(tmp_path: Path) -> None:
    blocks = [b for b in python_blocks(README.read_text()) if "prunekit.keep_masked" in b]
    assert len(blocks) == 1, "the README has one Python API snippet; tests/test_docs.py runs the others"
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # one thread: the suite shares a small machine
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "90.0%"
    assert (tmp_path / "m.safetensors").is_file()
