"""A fresh interpreter for each code block of the docs, without paying for `import torch, prunekit` each time.

A block used to run as `python -c CODE`: 2.5 CPU-seconds of imports before its first line (8 with transformers),
most of what tests/test_docs.py cost. Here one server process imports torch, prunekit and (when installed)
transformers once, then forks a child per block: the child is a separate process with the server's pristine
state (no block ever runs in the server), runs the block as `__main__` in its own directory with stdout and stderr
in a file, and its exit status is the block's. Blocks cannot see each other. Where fork is missing (Windows),
`run` falls back to `python -c`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

SERVER = r"""
import json, os, sys, traceback
import torch, prunekit, prunekit.cli
try:
    import transformers
    transformers.LlamaForCausalLM, transformers.AutoModelForCausalLM  # the lazy imports the llm blocks make
except ImportError:
    pass
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setsid()
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.chdir(job["cwd"])
            log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            sys.argv = job["argv"]
            sys.path.insert(0, "")
            exec(compile(job["code"], "<block>", "exec"), {"__name__": "__main__"})
            status = 0
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                status = e.code or 0
            else:
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class Forks:
    """The server: `run(code, cwd, argv)` -> (exit status, output)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env, text=True
            )
            assert self.proc.stdout.readline().strip() == "ready", "the block server did not start"
        return self.proc

    def run(self, code: str, cwd: Path, argv: list[str] | None = None, timeout: float = 600) -> tuple[int, str]:
        if not hasattr(os, "fork"):
            cmd = [sys.executable, "-c", code, *(argv or [])[1:]]
            done = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout)
            return done.returncode, done.stdout + done.stderr
        proc = self._start()
        log = cwd / ".block.log"
        proc.stdin.write(json.dumps({"code": code, "cwd": str(cwd), "log": str(log), "argv": argv or ["-c"]}) + "\n")
        proc.stdin.flush()
        child = json.loads(proc.stdout.readline())["pid"]
        timer = threading.Timer(timeout, _kill, (child,))  # a block that hangs: ended (its own session)
        timer.start()
        try:
            status = json.loads(proc.stdout.readline())["status"]
        finally:
            timer.cancel()
        output = log.read_text(errors="replace") if log.exists() else ""
        return status, output

    def close(self) -> None:
        """Ends the server (it exits when its input closes)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _kill(child: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child, signal.SIGKILL)
