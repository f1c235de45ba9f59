"""Bad input to compress is one line (UserError, exit 2) and leaves the model exactly as it was; a compressed
checkpoint loads in plain transformers with prunekit out of reach."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import prunekit
from prunekit.common.errors import UserError
from tests.hf.compress_models import build, calibration, ids, logits, same_weights, weights

transformers = pytest.importorskip("transformers")


def refused(model, match, **kwargs):
    before = weights(model)
    config = model.config.to_dict() if hasattr(model, "config") else None
    with pytest.raises(UserError, match=match) as caught:
        prunekit.compress(model, kwargs.pop("fraction", 0.25), **kwargs)
    assert "\n" not in str(caught.value)
    assert same_weights(model, before)
    assert config is None or model.config.to_dict() == config


def test_an_unsupported_family_is_refused():
    config = transformers.GPTNeoXConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=64
    )
    refused(transformers.GPTNeoXForCausalLM(config), "cannot compress model_type 'gpt_neox'", batches=calibration())
    refused(torch.nn.Linear(3, 3), "not a Hugging Face model", batches=calibration())


@pytest.mark.parametrize(
    "sizes, match",
    [
        ({"num_attention_heads": 3}, "break head grouping"),  # 3 query heads over 2 key/value heads
        ({"num_key_value_heads": 1}, "break head grouping"),  # 4 query heads on 1 kv head: groups grew
        ({"num_key_value_heads": 1, "num_attention_heads": 3}, "break head grouping"),
        ({"intermediate_size": 0}, "between 1"),
        ({"num_hidden_layers": 5}, "between 1"),
        ({"hidden_size": 0}, "between 1"),
        ({"vocab_size": 16}, "unknown keys"),
    ],
)
def test_sizes_that_break_the_model_are_refused(sizes, match):
    refused(build("llama"), match, batches=calibration(), sizes=sizes)


def test_gpt2_heads_are_refused_and_options_checked():
    refused(build("gpt2"), "only together with hidden", batches=calibration(), sizes={"num_attention_heads": 2})
    refused(build("llama"), "calibration batches", batches=None, depth=True)
    refused(build("llama"), "importance", batches=calibration(), importance="random")
    refused(build("llama"), r"in \(0, 1\)", batches=calibration(), fraction=1.0)


def test_a_missing_package_is_refused(monkeypatch):
    model = build("llama")
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    refused(model, "needs the transformers package", batches=calibration())


@pytest.mark.parametrize(
    "compress, fragment",
    [
        ("{depth: true}", "compress cannot compress"),  # a family it cannot compress
        ("{hidden: 1.0}", "prune.compress.hidden"),  # a hidden fraction that leaves nothing
        ("{hidden: true, width: false}", "compress cannot compress"),
    ],
)
def test_the_cli_exits_2_in_one_line(tmp_path, compress, fragment):
    (tmp_path / "c.yaml").write_text(
        "threads: 1\nmodel: {name: lenet_300_100}\ndata: {name: synthetic}\ntrain: {epochs: 1}\n"
        f"prune: {{method: compress, structure: compress, sparsity: 0.25, compress: {compress}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "prunekit", "run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


PLAIN = """
import json, sys
sys.path = [p for p in sys.path if not p.rstrip("/").endswith("/src") and p not in ("", ".")]
sys.modules["prunekit"] = None  # an editable install stays out of reach too
import torch, transformers
model = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
model.config._attn_implementation = "eager"
ids = torch.tensor(json.loads(sys.argv[2]))
with torch.no_grad():
    print(json.dumps({"type": type(model).__name__, "logits": model(ids).logits.tolist()}))
"""


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gpt2"])
def test_a_compressed_checkpoint_loads_in_plain_transformers(tmp_path, family):
    model = build(family, layers=4)
    report = prunekit.compress(model, 0.45, batches=calibration(), depth=True, hidden=True)
    assert report.after.layers < 4 and report.after.hidden < 32  # blocks, hidden channels (GPT-2: and heads)
    model.save_pretrained(tmp_path / "small")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    x = ids()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN, str(tmp_path / "small"), json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["type"] == type(model).__name__
    torch.testing.assert_close(torch.tensor(out["logits"]), logits(model, x), rtol=0, atol=1e-5)
