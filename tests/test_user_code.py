"""User code from the CLI: configs naming package.module:factory run with --import; files and runs record the name
and are rebuilt only when the user names the module; without the flag, one line naming it, exit code 2."""

import json
import sys
import textwrap

import pytest
import torch
import yaml

import prunekit
from prunekit.cli import main
from prunekit.common import user_code

MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    IMPORTED = True


    class Net(nn.Module):
        def __init__(self, num_classes, input_shape, width=16):
            super().__init__()
            c, h, w = input_shape
            self.conv = nn.Conv2d(c, 4, 3, padding=1)
            self.fc = nn.Linear(4 * h * w, width)
            self.out = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.out(torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1))))


    def dict_data(n=64, loader=False):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 1, 6, 6, generator=g)
        y = (x.mean((1, 2, 3)) > 0).long()
        ds = torch.utils.data.TensorDataset(x, y)
        return {"train": ds, "val": ds, "test": ds, "num_classes": 2, "input_shape": [1, 6, 6]}


    class Stream(torch.utils.data.IterableDataset):
        # an iterable dataset without a length, as a stream of records would be

        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            for _ in range(40):
                x = torch.randn(1, 6, 6, generator=g)
                yield x, int(x.mean() > 0)


    def stream_data():
        return {"train": Stream(), "test": Stream(), "num_classes": 2, "input_shape": [1, 6, 6]}


    def not_a_model():
        return 42
    """
)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory holding a user module `usernets_<id>` (unique per test: imported modules stay imported)."""
    name = f"usernets_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(user_code, "_ALLOWED", set())
    yield tmp_path, name
    sys.modules.pop(name, None)


def write_config(path, module, **data):
    cfg = {
        "model": {"name": f"{module}:Net", "args": {"width": 8}},
        "data": data or {"name": "synthetic", "shape": [1, 6, 6], "classes": 3, "train_size": 64, "test_size": 32},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.01},
        "prune": {"method": "imp", "rounds": 1, "rate": 0.5},
        "threads": 1,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_inspect_export_with_the_import_flag(workdir, capsys):
    tmp, module = workdir
    cfg = write_config(tmp / "c.yaml", module)
    assert main(["run", str(cfg), "--out", "run", "--import", module]) == 0
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    assert summary["model"] == f"{module}:Net"
    assert summary["arch"]["args"] == {"width": 8, "num_classes": 3, "input_shape": [1, 6, 6]}  # filled from data
    assert summary["arch"]["example"] == {"shape": [1, 1, 6, 6], "dtype": "float32"}
    assert summary["coverage"]["output_layers"] == ["out"]  # traced on the data
    capsys.readouterr()
    assert main(["inspect", "run", "--json", "--import", module]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sparsity"] == pytest.approx(0.5, abs=1e-3) and info["flops_remaining"] < info["flops"]
    for fmt in ("dense", "sparse"):
        assert main(["export", "run", "--format", fmt, "--out", f"m.{fmt}", "--import", module]) == 0
        assert main(["inspect", f"m.{fmt}", "--import", module]) == 0
    model = prunekit.load(tmp / "m.sparse", imports=[module])
    x = torch.randn(2, 1, 6, 6)
    assert torch.equal(model(x), prunekit.load(tmp / "m.dense")(x))


def test_without_the_flag_one_line_exit_2_and_nothing_imported(workdir, capsys):
    tmp, module = workdir
    cfg = write_config(tmp / "c.yaml", module)
    assert main(["run", str(cfg), "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pass --import {module}" in err
    assert module not in sys.modules and not (tmp / "run").exists()
    assert main(["run", str(cfg), "--out", "run", "--import", module]) == 0
    capsys.readouterr()
    user_code._ALLOWED.clear()
    sys.modules.pop(module, None)
    assert main(["export", "run", "--format", "sparse", "--out", "m.st"]) == 2
    assert main(["inspect", "run"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(f"--import {module}" in line for line in err)
    assert module not in sys.modules  # reading the run directory imported nothing
    assert main(["export", "run", "--format", "sparse", "--out", "m.st", "--import", module]) == 0
    user_code._ALLOWED.clear()
    sys.modules.pop(module, None)
    with pytest.raises(prunekit.UserError, match=f"imports=\\['{module}'\\]"):
        prunekit.load(tmp / "m.st")
    assert module not in sys.modules


def test_a_data_factory_and_the_dataloader_path(workdir):
    tmp, module = workdir
    cfg = write_config(tmp / "c.yaml", module, name=f"{module}:dict_data", args={"n": 48})
    summary = prunekit.run(cfg, tmp / "run", imports=[module])
    assert summary["dataset"] == f"{module}:dict_data" and summary["arch"]["args"]["num_classes"] == 2
    cfg = write_config(tmp / "s.yaml", module, name=f"{module}:stream_data", workers=1)
    summary = prunekit.run(cfg, tmp / "stream", imports=[module])
    assert summary["rounds"][1]["sparsity"] == pytest.approx(0.5, abs=1e-3) and summary["rounds"][1]["epochs"] == 1
    cfg = write_config(tmp / "d.yaml", module, name="synthetic", shape=[1, 6, 6], train_size=64, loader=True)
    summary = prunekit.run(cfg, tmp / "loader", imports=[module])
    assert summary["rounds"][1]["sparsity"] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    "model,message",
    [
        ({"name": "nosuchmodule:f"}, "pass --import nosuchmodule"),
        ({"name": "lenet5", "args": {"a": 1}}, "model.args are for package.module:factory"),
        ({"name": "MODULE:not_a_model"}, "not an nn.Module"),
        ({"name": "MODULE:missing"}, "has no attribute missing"),
        ({"name": "MODULE:Net", "args": {"bogus": 1}}, "failed: TypeError"),
    ],
)
def test_bad_user_code_is_one_line(workdir, model, message):
    tmp, module = workdir
    cfg = yaml.safe_load(write_config(tmp / "c.yaml", module).read_text())
    cfg["model"] = {**model, "name": model["name"].replace("MODULE", module)}
    with pytest.raises(prunekit.UserError, match=message) as info:
        prunekit.run(prunekit.config.from_dict(cfg), tmp / "run", imports=[module])
    assert "\n" not in str(info.value)


def test_free_form_args_are_bounded():
    from prunekit.config import from_dict

    deep: dict = {}
    node = deep
    for _ in range(12):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(prunekit.UserError, match="model.args"):
        from_dict({"model": {"name": "m:f", "args": deep}})
    with pytest.raises(prunekit.UserError, match="model.args"):
        from_dict({"model": {"name": "m:f", "args": {"big": list(range(20_000))}}})
    with pytest.raises(prunekit.UserError, match="expected a number, string, list or mapping"):
        from_dict({"model": {"name": "m:f", "args": {"x": [1, {"z": object()}]}}})
    cfg = from_dict({"model": {"name": "m:f", "args": {"width": 64, "sizes": [1, 2], "act": "relu"}}})
    assert cfg.replace(**{"model.args.width": 32}).model.args == {"width": 32, "sizes": [1, 2], "act": "relu"}


def test_import_flag_takes_module_names_only(workdir):
    with pytest.raises(prunekit.UserError, match="not a module name"):
        user_code.allow(["../evil.py"])
    with pytest.raises(prunekit.UserError, match="cannot import"):
        user_code.allow(["no_such_module_here"])
