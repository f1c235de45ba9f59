"""The examples run as written, on their tiny settings (in this process, as `python examples/X.py --tiny` would)."""

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
