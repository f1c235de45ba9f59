"""References (`package.module:factory`) that try to reach other code through a module the user named with --import.

Every attack writes a marker file if its payload runs; each case asserts a one-line refusal (exit 2) and no marker.
The user's module `goodmod_*` imports os, subprocess and torch and names `system` and `call` from them, as an
ordinary model module might; `goodpkg_*` is a package with a submodule the user did not name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import prunekit
from prunekit.common import user_code
from tests.hostile.harness import cli
from tests.hostile.model_files import join, split

GOODMOD = textwrap.dedent(
    """
    import os
    import subprocess
    from os import system
    from subprocess import call

    import torch
    from torch import nn

    from {helper} import WIDTH  # a sibling module next to this one: found because this one was found here


    class Net(nn.Module):
        def __init__(self, num_classes=3, input_shape=(1, 6, 6), width=WIDTH):
            super().__init__()
            self.fc = nn.Linear(int(torch.tensor(input_shape).prod()), width)
            self.out = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.out(torch.relu(self.fc(x.flatten(1))))
    """
)
EVIL_IMPORT = "open({marker!r}, 'w').write('ran')\n"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """cwd with goodmod_<id>.py, its helper, goodpkg_<id>/evilsub.py and a matplotlib.py; all write MARKER on import
    except goodmod and its helper."""
    tag = abs(hash(str(tmp_path))) % 10**8
    mod, helper, pkg = f"goodmod_{tag}", f"goodhelper_{tag}", f"goodpkg_{tag}"
    marker = tmp_path / "MARKER"
    (tmp_path / f"{helper}.py").write_text("WIDTH = 8\n")
    (tmp_path / f"{mod}.py").write_text(GOODMOD.format(helper=helper))
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "evilsub.py").write_text(
        EVIL_IMPORT.format(marker=str(marker)) + "def factory(**kw):\n    pass\n"
    )
    (tmp_path / "matplotlib.py").write_text(EVIL_IMPORT.format(marker=str(marker)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(user_code, "_ALLOWED", set())
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path, mod, pkg, marker
    for name in (mod, helper, pkg, f"{pkg}.evilsub"):
        sys.modules.pop(name, None)


def _payloads(mod: str, marker: Path) -> list[tuple[str, dict]]:
    touch = f"touch {marker}"
    return [
        (f"{mod}:os.system", {"command": touch}),
        (f"{mod}:torch.os.system", {"command": touch}),
        (f"{mod}:system", {"command": touch}),
        (f"{mod}:subprocess.call", {"args": touch, "shell": True}),
        (f"{mod}:call", {"args": touch, "shell": True}),
        (f"{mod}:subprocess.Popen", {"args": touch, "shell": True}),
        (f"{mod}:torch.nn.Linear", {"in_features": 2, "out_features": 2}),
        (f"{mod}:nn", {}),
        (f"{mod}:__builtins__", {}),
        (f"{mod}:__loader__", {}),
        (f"{mod}:eval", {}),
        (f"{mod}:open", {"file": str(marker), "mode": "w"}),
        ("os:system", {"command": touch}),
        (f"{mod}.os:system", {"command": touch}),
    ]


def _config(root: Path, name: str, args: dict) -> Path:
    cfg = {
        "model": {"name": name, "args": args},
        "data": {"name": "synthetic", "shape": [1, 6, 6], "classes": 3, "train_size": 64, "test_size": 32},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.01},
        "prune": {"method": "oneshot", "sparsity": 0.5},
        "threads": 1,
    }
    path = root / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_users_own_factory_still_resolves(world):
    tmp, mod, _, marker = world
    user_code.allow([mod])
    net = user_code.build_model(f"{mod}:Net", {"width": 4})
    assert net(torch.zeros(2, 1, 6, 6)).shape == (2, 3)
    assert tmp not in map(Path, sys.path[:-1])  # the current directory went last, never first
    assert not marker.exists()


def test_references_out_of_the_named_module_are_refused_in_configs(world):
    tmp, mod, _, marker = world
    for ref, args in _payloads(mod, marker):
        rc, err = cli(["run", _config(tmp, ref, args), "--out", tmp / "run", "--import", mod])
        assert rc == 2 and ref in err, (ref, err)
        assert not marker.exists(), ref
        assert not (tmp / "run").exists(), ref


def test_a_submodule_not_named_is_not_imported(world):
    tmp, mod, pkg, marker = world
    rc, err = cli(["run", _config(tmp, f"{pkg}.evilsub:factory", {}), "--out", tmp / "run", "--import", pkg])
    assert rc == 2 and f"--import {pkg}.evilsub" in err
    assert f"{pkg}.evilsub" not in sys.modules and not marker.exists()


def test_references_out_of_the_named_module_are_refused_in_model_files_and_runs(world):
    tmp, mod, _, marker = world
    user_code.allow([mod])
    model = user_code.build_model(f"{mod}:Net", {"width": 4}, {"shape": [1, 1, 6, 6], "dtype": "float32"})
    path = prunekit.save(model, tmp / "m.safetensors", format="dense")
    header, body = split(path.read_bytes())
    run_cfg = _config(tmp, f"{mod}:Net", {"width": 4})
    assert cli(["run", run_cfg, "--out", tmp / "run", "--import", mod])[0] == 0
    summary_path = tmp / "run" / "summary.json"
    summary = json.loads(summary_path.read_text())
    for ref, args in _payloads(mod, marker):
        meta = json.loads(header["__metadata__"]["prunekit"])
        meta["arch"] = {"name": ref, "args": args}
        header["__metadata__"]["prunekit"] = json.dumps(meta)
        (tmp / "bad.safetensors").write_bytes(join(header, body))
        for argv in (["inspect", tmp / "bad.safetensors"], ["export", tmp / "bad.safetensors", "--format", "dense"]):
            rc, err = cli([*argv, *(["--out", tmp / "o.safetensors"] if argv[0] == "export" else []), "--import", mod])
            assert rc == 2 and not marker.exists(), (ref, argv, err)
        with pytest.raises(prunekit.UserError):
            prunekit.load(tmp / "bad.safetensors", imports=[mod])
        assert not marker.exists(), ref
        summary_path.write_text(json.dumps({**summary, "arch": {"name": ref, "args": args}}))
        for argv in (["inspect", tmp / "run"], ["export", tmp / "run", "--format", "sparse", "--out", tmp / "o.st"]):
            rc, err = cli([*argv, "--import", mod])
            assert rc == 2 and not marker.exists(), (ref, argv, err)


def test_a_file_in_the_current_directory_never_shadows_an_installed_package(world):
    """A whole run with --import of the user's module in the current directory, where a matplotlib.py waits: the run's
    own report imports the real matplotlib (in a fresh process, as a user would run it)."""
    tmp, mod, _, marker = world
    cfg = _config(tmp, f"{mod}:Net", {"width": 4})
    env = dict(os.environ)
    main = "from prunekit.cli import main; raise SystemExit(main())"
    for i, launcher in enumerate(([sys.executable, "-m", "prunekit"], [sys.executable, "-c", main])):
        out = tmp / f"run{i}"
        argv = [*launcher, "run", str(cfg), "--out", str(out), "--import", mod]
        if launcher[1] == "-c":  # `python -c` puts '' first on the path itself; prunekit's console script does not
            argv = [sys.executable, "-P", *argv[1:]]
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (out / "summary.json").exists() and list(out.glob("*.png")), sorted(p.name for p in out.iterdir())
        assert not marker.exists()
