import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prunekit import config
from prunekit.common.errors import UserError
from prunekit.runner import experiment
from prunekit.store import checkpoint
from tests.helpers import run_interrupted, tiny


def quiet(_: str) -> None:
    pass


def run(cfg, out):
    return experiment.run(cfg, out, log=quiet)


def round_file(out: Path, k: int):
    return checkpoint.load(out / "checkpoints" / f"round_{k}.safetensors")


def test_run_directory_contract(tmp_path):
    summary = run(tiny(), tmp_path)
    for name in ("config.yaml", "summary.json", "rounds.csv", "report.md", "accuracy_vs_sparsity.png"):
        assert (tmp_path / name).is_file(), name
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["rounds"] == summary["rounds"]
    for key in (
        "model",
        "dataset",
        "method",
        "dense_accuracy",
        "final_sparsity",
        "final_accuracy",
        "total_epochs",
        "wall_seconds",
        "rounds",
        "layers",
    ):
        assert key in on_disk
    assert [r["round"] for r in on_disk["rounds"]] == [0, 1, 2]
    assert on_disk["rounds"][0]["sparsity"] == 0.0
    assert on_disk["total_epochs"] == 6
    csv_lines = (tmp_path / "rounds.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("round,sparsity,test_accuracy")
    assert config.load(tmp_path / "config.yaml") == tiny()
    assert [layer["name"] for layer in on_disk["layers"]] == ["fc1.weight", "fc2.weight", "fc3.weight"]


def test_imp_exact_sparsity_masks_shrink_and_stay_applied(tmp_path):
    run(tiny(**{"prune.rounds": 3}), tmp_path)
    total = 64 * 300 + 300 * 100 + 100 * 4
    previous = None
    for k in range(4):
        state, masks, record, _ = round_file(tmp_path, k)
        kept = sum(int(m.sum()) for m in masks.values())
        assert kept == round(0.8**k * total)  # exact to one weight
        assert record["sparsity"] == pytest.approx(1 - kept / total, abs=1e-6)
        for name, mask in masks.items():
            assert torch.all(state[name][~mask] == 0)  # pruned weights still zero after training
            if previous is not None:
                assert not torch.any(mask & ~previous[name])  # masks only shrink
        previous = masks


@pytest.fixture
def start_weights(monkeypatch):
    """The weights each round starts training from, keyed by round."""
    seen = {}
    original = experiment.Run._train

    def spy(self, plan, masks, optimizer, progress, epoch_path, stream=0):
        seen[plan.index] = {k: v.clone() for k, v in self.model.state_dict().items()}
        return original(self, plan, masks, optimizer, progress, epoch_path, stream)

    monkeypatch.setattr(experiment.Run, "_train", spy)
    return seen


def test_weight_rewinding_restores_initial_weights_on_survivors(tmp_path, start_weights):
    seen = start_weights
    run(tiny(), tmp_path)
    init = seen[0]
    for k in (1, 2):
        _, masks, _, _ = round_file(tmp_path, k)
        for name, mask in masks.items():
            assert torch.equal(seen[k][name][mask], init[name][mask])


def test_late_rewinding_restores_epoch_k_weights(tmp_path, start_weights):
    seen = start_weights
    run(tiny(**{"prune.rewind": "epoch:1", "train.epochs": 3}), tmp_path)
    rewind, _, record, _ = checkpoint.load(tmp_path / "checkpoints" / "rewind.safetensors")
    assert record["epoch"] == 1
    _, masks, r1, _ = round_file(tmp_path, 1)
    assert r1["epochs"] == 2  # the schedule resumes at epoch 1 of 3
    for name, mask in masks.items():
        assert torch.equal(seen[1][name][mask], rewind[name][mask])
        assert not torch.equal(rewind[name], seen[0][name])


def test_rewind_variants_end_in_different_weights(tmp_path):
    """With a decaying schedule every variant trains differently (under a constant lr, lr == finetune)."""
    finals = {}
    for rewind in ("init", "epoch:1", "lr", "finetune"):
        out = tmp_path / rewind.replace(":", "")
        step = {"train.lr_schedule": "step", "train.milestones": [1]}
        run(tiny(**{"prune.rewind": rewind, "prune.rounds": 1, **step}), out)
        finals[rewind] = round_file(out, 1)[0]["fc1.weight"]
    names = list(finals)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.equal(finals[a], finals[b]), (a, b)


def test_aimp_short_rounds_and_cost_accounting(tmp_path):
    summary = run(tiny(**{"prune.rounds": 3, "prune.tau": 1, "train.epochs": 3}), tmp_path)
    assert [r["epochs"] for r in summary["rounds"]] == [3, 1, 1, 3]
    assert summary["total_epochs"] == 8
    assert summary["wall_seconds"] == pytest.approx(sum(r["wall_seconds"] for r in summary["rounds"]), abs=0.01)


def test_controls_record_their_accuracy(tmp_path):
    summary = run(tiny(**{"prune.control": "random", "prune.rounds": 1}), tmp_path)
    assert summary["rounds"][0]["control_accuracy"] is None
    assert summary["rounds"][1]["control_accuracy"] is not None
    _, ticket, _, _ = round_file(tmp_path, 1)
    _, control, _, _ = checkpoint.load(tmp_path / "checkpoints" / "round_1.control.safetensors")
    for name in ticket:
        assert int(ticket[name].sum()) == int(control[name].sum())  # same per-layer sparsity
        assert not torch.equal(ticket[name], control[name])  # different positions


def test_oneshot_list_prunes_each_from_the_dense_network(tmp_path):
    cfg = tiny(**{"prune.method": "oneshot", "prune.sparsity": [0.5, 0.9], "prune.retrain_epochs": 0})
    summary = run(cfg, tmp_path)
    assert [r["sparsity"] for r in summary["rounds"]] == [0.0, 0.5, 0.9]
    dense = round_file(tmp_path, 0)[0]
    for k in (1, 2):
        state, masks, _, _ = round_file(tmp_path, k)
        for name, mask in masks.items():
            assert torch.equal(state[name][mask], dense[name][mask])  # no fine-tuning: survivors untouched


def test_ignored_tensors_untouched(tmp_path):
    cfg = tiny(
        **{"prune.method": "oneshot", "prune.sparsity": [0.9], "prune.retrain_epochs": 0, "prune.ignore": ["fc3"]}
    )
    run(cfg, tmp_path)
    state, masks, _, _ = round_file(tmp_path, 1)
    assert "fc3.weight" not in masks
    assert torch.equal(state["fc3.weight"], round_file(tmp_path, 0)[0]["fc3.weight"])


def test_different_config_on_same_directory_is_refused(tmp_path):
    run(tiny(**{"prune.rounds": 1}), tmp_path)
    with pytest.raises(UserError, match=r"differs in: prune\.rate, train\.lr"):
        run(tiny(**{"prune.rounds": 1, "prune.rate": 0.3, "train.lr": 0.02}), tmp_path)


def test_finished_rounds_are_not_redone(tmp_path, monkeypatch):
    run(tiny(**{"prune.rounds": 1}), tmp_path)
    stamp = (tmp_path / "checkpoints" / "round_1.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(experiment.Run, "_run_round", lambda *a: pytest.fail("a finished round was redone"))
    run(tiny(**{"prune.rounds": 1}), tmp_path)
    assert (tmp_path / "checkpoints" / "round_1.safetensors").stat().st_mtime_ns == stamp


def final_state(out: Path, rounds: int):
    records = [round_file(out, k) for k in range(rounds + 1)]
    return [(r[2]["sparsity"], r[2]["test_accuracy"], r[2]["val_accuracy"]) for r in records], records[-1]


@pytest.mark.parametrize("crash_after", [1, 3, 5])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, crash_after):
    cfg = tiny(**{"prune.rounds": 2, "train.epochs": 3, "prune.rewind": "epoch:1", "train.optimizer": "adam"})
    run(cfg, tmp_path / "straight")

    run_interrupted(cfg, tmp_path / "resumed", crash_after, monkeypatch)

    rows_a, (state_a, masks_a, _, _) = final_state(tmp_path / "straight", 2)
    rows_b, (state_b, masks_b, _, _) = final_state(tmp_path / "resumed", 2)
    assert rows_a == rows_b
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    for name in masks_a:
        assert torch.equal(masks_a[name], masks_b[name])


@pytest.mark.slow
def test_sigkill_then_same_command_finishes_identically(tmp_path):
    cfg_path = tmp_path / "cfg.yaml"
    cfg = tiny(**{"prune.rounds": 3, "train.epochs": 4, "data.train_size": 2048})
    cfg_path.write_text(config.dump(cfg))
    cmd = [sys.executable, "-m", "prunekit.cli", "run", str(cfg_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cmd, "--out", str(tmp_path / "a")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "b")], env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (tmp_path / "b" / "checkpoints" / "round_1.epoch.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "b" / "checkpoints" / "round_3.safetensors").exists()
    subprocess.run([*cmd, "--out", str(tmp_path / "b")], check=True, env=env, capture_output=True)
    a = json.loads((tmp_path / "a" / "summary.json").read_text())["rounds"]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())["rounds"]
    timings = ("wall_seconds", "prune_seconds")
    strip = [{k: v for k, v in r.items() if k not in timings} for r in a]
    assert strip == [{k: v for k, v in r.items() if k not in timings} for r in b]


def test_a_copied_round_0_is_in_summary_json_before_the_next_round_trains(tmp_path, monkeypatch):
    """Round 0 copied into a new run directory (the ratio studies in docs/results/ share it this way) is readable
    by `prunekit sensitivity`, `report` and `inspect` as soon as the run starts, not only after its next round."""
    import shutil

    from tests.helpers import Crash

    cfg = tiny()
    done = run(cfg, tmp_path / "a")
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "round_0.safetensors", tmp_path / "b" / "checkpoints")

    def crash(*_):
        raise Crash

    monkeypatch.setattr(experiment.Run, "_run_round", crash)
    with pytest.raises(Crash):
        run(cfg, tmp_path / "b")
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["complete"] is False and summary["rounds"] == done["rounds"][:1]


def test_a_copied_round_0_that_masks_fewer_tensors_is_refused_in_one_line(tmp_path):
    import shutil

    run(tiny(**{"prune.ignore": None}), tmp_path / "a")  # the output layer protected: no mask for it
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "a" / "checkpoints" / "round_0.safetensors", tmp_path / "b" / "checkpoints")
    with pytest.raises(UserError, match="has no mask for .*prune.ignore") as err:
        run(tiny(), tmp_path / "b")  # prune.ignore: [] prunes the output layer too
    assert "\n" not in str(err.value)
