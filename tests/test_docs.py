"""Every code block of README.md and docs/*.md runs (docs/results* excepted: measured records, not instructions).

How each block is exercised, by its fence's language:
- python: run in a fresh process (a fork of a server that imported torch and prunekit once: tests/doc_forks.py), in
  an empty directory beside a copy of configs/, as written.
- sh: every command is run for real by test_shell_block_runs, on the documented fill-in of tests/doc_shell.py (tiny
  copies of the configs, the reader's package of docs/user_models.md, the README's quickstart run shared); what
  cannot run here (GPUs, several machines, a Ray cluster, `make` targets that install) is listed there with the
  reason and reported as left out. The quickstart block runs in the default suite, the others under -m slow
  (`make test-slow`). In the default suite every command is also checked without running it (test_block_runs):
  `prunekit ...` (also `.venv/bin/prunekit`, `python -m prunekit` and `torchrun ... -m prunekit ...`) parses with
  prunekit's own argument parser, and every config or sweep file of the repository it names loads, with its
  `--set` overrides (so keys, values, methods and models are valid; an override naming a file under runs/, which an
  earlier command of the block writes, is left out); `make X` names a Makefile target; `python scripts/...` names a
  script that exists. Commands of other tools (pip, mlflow, tensorboard, source) are left to those tools.
- yaml: a run config (or a section of one) must be accepted by prunekit's config reader; a sweep file by the sweep
  reader (placed where its `base` path resolves).
A sketch (a fence without a language, or a block that uses names the reader supplies) carries a marker on the line
before its fence, `<!-- test: prelude NAME -->`: the test runs PRELUDES[NAME] (below: the reader's model, data and
loss, filled in with small stand-ins) and then the block as written. `<!-- test: skip REASON -->` leaves a block
out, with the reason in the page's source; SKIPS lists the reasons this suite accepts.
"""

from __future__ import annotations

import re
import shlex
import shutil
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import doc_shell
from tests.doc_forks import Forks

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("results"))
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"^<!-- test: (prelude|skip) (.+?) -->$")
SKIPS: tuple[str, ...] = ()  # the reasons a block may be left out: none so far
OTHER_TOOLS = ("pip", "mlflow", "tensorboard", "source", "MLFLOW_ALLOW_FILE_STORE=true")

PRELUDES = {
    # the reader's trained network, a held-out evaluate(model) -> accuracy, an input batch x, an optimizer
    "zoo_model": """
        import torch
        import prunekit
        torch.manual_seed(0)
        model = prunekit.create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
        x = torch.randn(16, 1, 28, 28)
        labels = model(x).argmax(1).detach()
        def evaluate(m):
            with torch.no_grad():
                return float((m(x).argmax(1) == labels).float().mean())
        batches = [(x, labels)]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """,
    # a Hugging Face causal LM saved at `path`, and token batches [batch, seq]
    "hf_llm": """
        import torch
        import transformers
        import prunekit
        torch.manual_seed(0)
        config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=1, vocab_size=64,
                                          max_position_embeddings=32, bos_token_id=0, eos_token_id=0)
        path = "base_llm"
        transformers.LlamaForCausalLM(config).save_pretrained(path)
        calibration_token_batches = [torch.randint(64, (2, 16)) for _ in range(2)]
    """,
    # the reader's own network class and an input batch
    "own_net": """
        import torch
        from torch import nn
        import prunekit
        class MyNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1, self.conv2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
                self.head = nn.Linear(32, 10)
            def forward(self, x):
                x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
                return self.head(x.mean((2, 3)))
        net = MyNet()
        x = torch.randn(2, 3, 16, 16)
    """,
    # the reader's model, its inputs, batches of (inputs, targets), loss, DataLoaders
    "own_data": """
        import torch
        from torch import nn
        import prunekit
        class MyNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())
                self.hidden = nn.Linear(32, 32)
                self.out = nn.Linear(32, 4)
            def forward(self, x):
                return self.out(torch.relu(self.hidden(self.encoder(x))))
        torch.manual_seed(0)
        model = MyNet()
        data = [(torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,))) for _ in range(4)]
        batch_inputs = data[0][0]
        loader_batches = data
        train_loader, val_loader, test_loader = data, data[:1], data[:1]
        def my_loss(model, batch):
            return nn.functional.cross_entropy(model(batch[0]), batch[1])
        def my_inputs(batch):
            return batch[0]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """,
}


def blocks() -> list[tuple[str, str, str, str | None, str | None]]:
    """(id, language, code, marker kind, marker argument) of every fenced block of the pages."""
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            before = [line for line in text[: m.start()].splitlines() if line.strip()]
            marker = MARKER.match(before[-1].strip()) if before else None
            line = text[: m.start()].count("\n") + 1
            kind, arg = (marker.group(1), marker.group(2)) if marker else (None, None)
            out.append((f"{page.relative_to(ROOT)}:{line}", m.group(1), m.group(2), kind, arg))
    return out


BLOCKS = blocks()


def _workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    return tmp_path


@pytest.fixture(scope="module")
def forks() -> Iterator[Forks]:
    server = Forks(doc_shell.env())
    yield server
    server.close()


def _run_python(forks: Forks, code: str, cwd: Path) -> None:
    status, output = forks.run(code, cwd)
    assert status == 0, output[-3000:]


def _commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def _prunekit_args(words: list[str]) -> list[str] | None:
    """The prunekit arguments of a command line, or None when it runs another tool."""
    if words[0] in ("prunekit", ".venv/bin/prunekit"):
        return words[1:]
    if words[:3] in (["python", "-m", "prunekit"], [".venv/bin/python", "-m", "prunekit"]):
        return words[3:]
    if words[0] in ("torchrun", ".venv/bin/torchrun"):
        i = words.index("-m")
        assert words[i + 1] == "prunekit", words
        return words[i + 2 :]
    return None


def _check_command(words: list[str], cwd: Path) -> None:
    from prunekit import config
    from prunekit.cli import build_parser
    from prunekit.sweep import spec

    args = _prunekit_args(words)
    if args is not None:
        parsed = build_parser().parse_args(args)
        source = getattr(parsed, "config", None) or getattr(parsed, "source", None)
        if parsed.command == "run" and source and str(source).startswith("configs/"):
            sets = [o for o in getattr(parsed, "overrides", None) or [] if "runs/" not in o.partition("=")[2]]
            config.load(cwd / source, sets)  # overrides naming files an earlier command writes under runs/: not here
        if parsed.command == "sweep" and str(parsed.sweep).startswith("configs/"):
            spec.load(cwd / parsed.sweep)
        return
    if words[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        assert all(t in targets for t in words[1:]), words
        return
    if words[0] in ("python", ".venv/bin/python") and words[1].startswith("scripts/"):
        assert (ROOT / words[1]).is_file(), words
        return
    assert words[0] in OTHER_TOOLS, f"a command this test does not know how to check: {words}"


def _check_yaml(code: str, cwd: Path) -> None:
    from prunekit import config
    from prunekit.sweep import spec

    values = yaml.safe_load(code)
    if "base" in values or "grid" in values:
        where = cwd / "configs" / "sweeps" / "doc_block.yaml"
        where.write_text(code)
        spec.load(where)
    else:
        config.from_dict(values)


@pytest.mark.parametrize("where, language, code, kind, arg", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_block_runs(
    forks: Forks, tmp_path: Path, where: str, language: str, code: str, kind: str | None, arg: str | None
) -> None:
    cwd = _workdir(tmp_path)
    if kind == "skip":
        assert arg.startswith(SKIPS), f"{where}: skipped for a reason this suite does not accept: {arg}"
        return
    if kind == "prelude":
        if arg == "hf_llm":
            pytest.importorskip("transformers")
        _run_python(forks, textwrap.dedent(PRELUDES[arg]) + "\n" + code, cwd)
        return
    assert language, f"{where}: a sketch without a language needs a <!-- test: prelude NAME --> marker"
    if language == "python":
        if "import transformers" in code:
            pytest.importorskip("transformers")  # the llm extra
        _run_python(forks, code, cwd)
    elif language in ("sh", "bash"):
        for words in _commands(code):
            _check_command(words, cwd)
    elif language == "yaml":
        _check_yaml(code, cwd)
    elif language == "text":  # a command synopsis or a file tree (docs/design.md): shown, not code to run
        assert not re.search(r"^\s*(import |from \w+ import )", code, re.M), f"{where}: code in a text block"
    else:
        pytest.fail(f"{where}: no way to run a {language} block")


def test_every_page_is_covered() -> None:
    """The pages this test reads, and that it finds their blocks (a broken fence pattern would find none)."""
    names = {p.name for p in PAGES}
    assert {"README.md", "user_models.md", "distributed.md"} <= names
    assert len(BLOCKS) >= 15


SHELL = [(where, code) for where, language, code, kind, _ in BLOCKS if language in ("sh", "bash") and kind is None]


def _quickstart(where: str, code: str) -> bool:
    """The README's quickstart block (run, report, export, inspect, sensitivity): run in the default suite."""
    return where.startswith("README.md:") and all(f"prunekit {c} " in code for c in ("run", "export", "inspect"))


@pytest.fixture(scope="module")
def quickstart(forks: Forks, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return doc_shell.quickstart_run(forks, tmp_path_factory.mktemp("quickstart"))


@pytest.mark.parametrize(
    "where, code",
    [pytest.param(w, c, marks=() if _quickstart(w, c) else pytest.mark.slow) for w, c in SHELL],
    ids=[w for w, _ in SHELL],
)
def test_shell_block_runs(forks: Forks, quickstart: Path, tmp_path: Path, where: str, code: str) -> None:
    cwd = _workdir(tmp_path)
    doc_shell.shrink_configs(cwd / "configs")
    if "runs/lth" in code:  # the README's quickstart run, made once (by its own command) for every page reading it
        shutil.copytree(quickstart, cwd / "runs" / "lth")
    if "mypackage" in code:
        index = next(i for i, b in enumerate(BLOCKS) if b[0] == where)
        assert BLOCKS[index - 1][1] == "yaml" and "mypackage" in BLOCKS[index - 1][2], "the page's config block moved"
        doc_shell.write_mypackage(cwd, BLOCKS[index - 1][2])
    left_out, batch = [], []
    for words in _commands(code):
        why = doc_shell.not_run(words)
        if why is not None:
            left_out.append(f"{shlex.join(words)}: {why}")
            continue
        args = _prunekit_args(words)
        if args is not None and words[0] in ("torchrun", ".venv/bin/torchrun"):
            doc_shell.run_prunekit(forks, batch, cwd)
            batch = []
            doc_shell.run_torchrun(words, cwd)
        elif args is not None:
            batch.append(args)
        else:
            left_out.append(f"{shlex.join(words)}: not a prunekit command (checked by test_block_runs)")
    doc_shell.run_prunekit(forks, batch, cwd)
    for line in left_out:
        warnings.warn(f"{where}: not run: {line}", stacklevel=1)
    if left_out and len(left_out) == len(_commands(code)):
        pytest.skip("; ".join(left_out))


def test_one_shell_block_runs_by_default() -> None:
    assert sum(_quickstart(w, c) for w, c in SHELL) == 1
