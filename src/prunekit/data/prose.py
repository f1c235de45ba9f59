"""English prose every machine has offline, tokenised for SmolLM2, as the dataset `prose`.

Sources (nothing is imported or executed to read them):
- the Python reference documentation in `pydoc_data.topics` (79 topics, about 465k characters), cut into pieces
  of whole paragraphs of at least 2,000 characters, keyed `topics/<topic>/<n>` (a paragraph that an earlier topic
  already holds is left out: topics repeat sections of one another);
- the docstrings of the standard library's sources (read with `ast`, never imported): per file, the module,
  class and function docstrings of at least 200 characters, in source order, keyed `docstrings/<relative path>`
  (the same files as `pystdlib`: no tests, no site-packages).

Splits are fixed by a hash of each document's key (CRC-32 mod 20), so a document never straddles two splits:

| split       | pydoc topics          | docstrings  |
|-------------|-----------------------|-------------|
| test        | buckets 0-6 (35%)     | none        |
| val         | bucket 7 (5%)         | none        |
| calibration | buckets 8-9 (10%)     | 0-3 (20%)   |
| train       | buckets 10-19 (50%)   | 4-19 (80%)  |

The held-out evaluation text (test, val) is reference-manual prose only. Within a split the documents are
tokenised one by one with the model's tokenizer (no special tokens), in the order of their hash, and joined by
its end-of-text token. Evaluation follows the papers (SparseGPT, Wanda): the token stream is cut into
non-overlapping windows of T = `data.seq_len` tokens (the tail that fills no window is dropped); the target of
position t is token t + 1 of the same window, and the last position has none (-100, skipped), so perplexity =
exp(mean NLL over the T - 1 predictions of every window). The runner draws its calibration batches from `train`
(as for every dataset); `calibration_windows` gives the separate calibration split to the Python API.
"""

from __future__ import annotations

import ast
import functools
import os
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.common.hf_cache import load_tokenizer
from prunekit.config import DataConfig
from prunekit.data.dataset import DATASETS, Dataset
from prunekit.data.pystdlib import SKIP_DIRS, stdlib_root, token_dataset

IGNORE = -100
SPLITS = ("test", "val", "calibration", "train")
TOPIC_BUCKETS = {"test": range(0, 7), "val": range(7, 8), "calibration": range(8, 10), "train": range(10, 20)}
DOC_BUCKETS = {"calibration": range(0, 4), "train": range(4, 20)}
PIECE_CHARS = 2000
DOC_MIN_CHARS = 200
DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
VOCAB = 49152  # SmolLM2's tokenizer


def topic_pieces() -> dict[str, str]:
    """The reference documentation's topics cut into pieces of whole paragraphs (>= PIECE_CHARS each). Topics
    repeat sections of one another: a paragraph (of 80 characters or more) seen in an earlier topic, in sorted
    order, is left out, so no text reaches two splits."""
    from pydoc_data.topics import topics

    out: dict[str, str] = {}
    seen: set[str] = set()
    for topic in sorted(topics):
        pieces, piece = [], []
        for paragraph in topics[topic].split("\n\n"):
            if len(paragraph) >= 80:
                if paragraph in seen:
                    continue
                seen.add(paragraph)
            piece.append(paragraph)
            if sum(len(p) for p in piece) >= PIECE_CHARS:
                pieces.append("\n\n".join(piece))
                piece = []
        if piece:
            pieces.append("\n\n".join(piece))
        out.update({f"topics/{topic}/{i}": text for i, text in enumerate(pieces)})
    return out


def docstrings(root: Path) -> dict[str, str]:
    """Per standard-library file, its long docstrings joined by blank lines (files that do not parse are skipped)."""
    out: dict[str, str] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            path = Path(folder, name)
            if not name.endswith(".py"):
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue
            nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, DEFINITIONS))]
            texts = [d for d in (ast.get_docstring(n) for n in nodes) if d and len(d) >= DOC_MIN_CHARS]
            if texts:
                out[f"docstrings/{path.relative_to(root).as_posix()}"] = "\n\n".join(texts)
    return out


def split_documents() -> dict[str, list[str]]:
    """Each split's document texts, in the order of the hash of their keys."""
    keyed: dict[str, list[tuple[int, str, str]]] = {s: [] for s in SPLITS}
    for table, buckets in ((topic_pieces(), TOPIC_BUCKETS), (docstrings(stdlib_root()), DOC_BUCKETS)):
        for key, text in table.items():
            digest = zlib.crc32(key.encode())
            split = next((s for s, b in buckets.items() if digest % 20 in b), None)
            if split is not None:
                keyed[split].append((digest, key, text))
    return {s: [text for _, _, text in sorted(items)] for s, items in keyed.items()}


def tokenize(texts: list[str], tokenizer: Any) -> Tensor:
    """The documents' tokens joined by the end-of-text token, as one int64 stream."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.int64)


@functools.lru_cache(maxsize=2)
def token_splits(tokenizer_name: str = "smollm2-135m") -> dict[str, Tensor]:
    """Every split as one token stream (tokenised once per process)."""
    tokenizer = load_tokenizer(tokenizer_name)
    return {split: tokenize(texts, tokenizer) for split, texts in split_documents().items()}


def windows(tokens: Tensor, seq_len: int, what: str = "prose") -> tuple[Tensor, Tensor]:
    """(x, y): non-overlapping windows of seq_len tokens; y[t] = x[t + 1], the last target -100 (no prediction)."""
    count = len(tokens) // seq_len
    if count < 1 or seq_len < 2:
        raise UserError(f"{what}: {len(tokens)} tokens cannot make one window of {seq_len} (data.seq_len >= 2)")
    x = tokens[: count * seq_len].view(count, seq_len).clone()
    y = torch.full_like(x, IGNORE)
    y[:, :-1] = x[:, 1:]
    return x, y


def calibration_windows(seq_len: int = 512, count: int | None = None) -> Tensor:
    """Token ids [N, seq_len] from the calibration split (the first `count` windows; None: all)."""
    x, _ = windows(token_splits()["calibration"], seq_len, "prose calibration")
    return x if count is None else x[:count]


@DATASETS.register("prose")
def build(cfg: DataConfig, seed: int) -> Dataset:
    """Windows of `data.seq_len` SmolLM2 tokens; `seed` plays no part (the splits are fixed by document)."""
    tokens = token_splits()
    split = {name: windows(tokens[name], cfg.seq_len, f"prose {name}") for name in ("train", "val", "test")}
    return token_dataset("prose", split, VOCAB, cfg.seq_len)
