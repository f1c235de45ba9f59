"""The examples run as written, on their tiny settings (in this process, as `python examples/X.py --tiny` would)."""

import json
import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_own_training_loop(monkeypatch, capsys):
    out = run_example("custom_cnn_own_loop.py", ["--tiny"], monkeypatch, capsys)
    assert "pruned to sparsity 80." in out and "loads back to identical outputs: True" in out
    assert "protected: output layer classifier (traced" in out


def test_imp_through_the_python_api(tmp_path, monkeypatch, capsys):
    out = run_example("imp_user_model.py", ["--out", str(tmp_path / "run"), "--tiny"], monkeypatch, capsys)
    assert "round 3: sparsity 87.50%" in out and "output layer ['head']" in out
    again = run_example("imp_user_model.py", ["--out", str(tmp_path / "run"), "--tiny"], monkeypatch, capsys)
    assert "round 3: sparsity 87.50%" in again  # resumed: nothing retrained


def test_transformer_language_model(tmp_path, monkeypatch, capsys):
    out = run_example("transformer_lm.py", ["--out", str(tmp_path / "lm"), "--tiny"], monkeypatch, capsys)
    assert "round 3: sparsity 65.69%" in out and "test perplexity" in out
    assert "tok.weight: embedding (tok, also the output layer lm_head)" in out


def test_transformer_language_model_loses_whole_heads(tmp_path, monkeypatch, capsys):
    """--structure channel removes half the attention heads (q, k, v rows and proj columns together) and half the
    MLP units; the tied embedding/output matrix and the residual width stay."""
    out = run_example(
        "transformer_lm.py", ["--out", str(tmp_path / "lm"), "--tiny", "--structure", "channel"], monkeypatch, capsys
    )
    summary = json.loads((tmp_path / "lm" / "summary.json").read_text())
    weights = summary["rounds"][1]["sparsity"]  # the fraction of prunable weights removed; half the channels
    assert f"round 1: sparsity {weights:.2%} (channels 50.00%)" in out
    layers = {row["name"]: row for row in summary["layers"]}
    for name in ("q", "k", "v"):
        assert layers[f"blocks.0.attn.{name}.weight"]["shape"] == [8, 16]  # one head of two (head_dim 8) left
    assert layers["blocks.0.attn.proj.weight"]["shape"] == [16, 8]
    assert layers["blocks.0.fc.weight"]["shape"] == [32, 16] and layers["lm_head.weight"]["shape"] == [256, 16]
