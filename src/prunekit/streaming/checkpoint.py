"""A Hugging Face checkpoint directory read lazily: where each tensor lies, the model skeleton its config.json
describes (parameters on the meta device, so it costs no memory), and modules filled from disk and emptied again.

Layouts: `model.safetensors.index.json` with its shards, or a single `model.safetensors`. Everything is checked
before a byte is written: the index names only files inside the directory that exist, every shard is whole and
holds the tensors the index puts there, every tensor the model needs is present with the shape the config implies.
Pickle checkpoints (`pytorch_model.bin`) are refused, never unpickled; config.json never imports code.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.streaming.safetensors_files import MAX_HEADER, Entry, read_header, read_tensor

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


@dataclass
class Checkpoint:
    """The tensors of a checkpoint directory, by name, in the order the files list them."""

    root: Path
    entries: dict[str, Entry]

    def tensor(self, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
        """A tensor read from disk (converted to `like`'s dtype when given)."""
        value = read_tensor(self.entries[name], name)
        return value if like is None else value.to(like.dtype)


def open_checkpoint(root: Path) -> Checkpoint:
    if not root.is_dir():
        raise UserError(f"{root} is not a directory: give a Hugging Face checkpoint directory")
    if not (root / "config.json").is_file():
        raise UserError(f"{root} has no config.json: give a Hugging Face checkpoint directory")
    if (root / INDEX).is_file():
        weight_map = _weight_map(root / INDEX)
        files = list(dict.fromkeys(weight_map.values()))
    elif (root / SINGLE).is_file():
        weight_map, files = None, [SINGLE]
    else:
        pickled = [p.name for p in root.glob("*.bin")]
        also = f" ({', '.join(pickled[:2])} is a pickle, which prunekit never loads)" if pickled else ""
        raise UserError(f"{root} holds neither {INDEX} nor {SINGLE}{also}: save it with safetensors")
    entries: dict[str, Entry] = {}
    for file in files:
        path = root / file
        if not path.is_file():
            raise UserError(f"{root / INDEX} names {file}, which does not exist in {root}")
        found, _ = read_header(path)
        for name, entry in found.items():
            if name in entries:
                raise UserError(f"tensor {name} is in both {entries[name].path.name} and {file}")
            entries[name] = entry
    for name, file in (weight_map or {}).items():
        if name not in entries or entries[name].path.name != file:
            raise UserError(f"{root / INDEX} puts tensor {name} in {file}, which does not hold it")
    return Checkpoint(root, entries)


def _weight_map(path: Path) -> dict[str, str]:
    if path.stat().st_size > MAX_HEADER:
        raise UserError(f"{path} is larger than {MAX_HEADER:,} bytes: not a checkpoint index")
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{path} is not a checkpoint index: expected JSON with a weight_map") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise UserError(f"{path}: weight_map must map tensor names to file names")
    for file in set(weight_map.values()):
        if Path(file).name != file or file in {".", ".."}:
            raise UserError(f"{path} names {file!r}: shards must be plain file names inside the checkpoint directory")
    return weight_map


@contextlib.contextmanager
def params_on_meta() -> Iterator[None]:
    """Parameters created inside are moved to the meta device (no memory); buffers (rotary tables) stay real."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=False)

    nn.Module.register_parameter = on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]


def skeleton(root: Path) -> nn.Module:
    """The causal language model config.json describes, its parameters on the meta device."""
    try:
        import transformers
    except ImportError:
        raise UserError("pruning a checkpoint directory needs transformers: pip install 'prunekit[llm]'") from None
    try:
        config = transformers.AutoConfig.from_pretrained(root, local_files_only=True, trust_remote_code=False)
        with params_on_meta():
            model = transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=False)
        model.tie_weights()  # moved to meta one by one, tied parameters (lm_head = embedding) came apart: tie again
    except (ValueError, KeyError, OSError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{root / 'config.json'}: cannot build the model it describes: {first}") from None
    return model


def check_shapes(model: nn.Module, ckpt: Checkpoint) -> None:
    """Every parameter of the model is in the checkpoint (or tied to one that is), with the config's shape."""
    by_param: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_param.setdefault(id(param), []).append(name)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False)}
    for names in by_param.values():
        if not any(n in ckpt.entries for n in names):
            raise UserError(f"{ckpt.root} lacks tensor {names[0]}, which the model of its config.json has")
    for name, shape in shapes.items():
        entry = ckpt.entries.get(name)
        if entry is not None and entry.shape != shape:
            raise UserError(
                f"tensor {name} in {entry.path.name} has shape {list(entry.shape)}, "
                f"but config.json makes it {list(shape)}"
            )


def fill(module: nn.Module, prefix: str, ckpt: Checkpoint) -> None:
    """Read the module's own parameters and persistent buffers (not its children's) from the checkpoint."""
    for name, param in list(module._parameters.items()):
        if param is not None and param.is_meta and prefix + name in ckpt.entries:
            module._parameters[name] = nn.Parameter(ckpt.tensor(prefix + name, param), requires_grad=False)
    for name, buffer in list(module._buffers.items()):
        if buffer is not None and prefix + name in ckpt.entries and name not in module._non_persistent_buffers_set:
            module._buffers[name] = ckpt.tensor(prefix + name, buffer)


def fill_tree(root: nn.Module, prefix: str, ckpt: Checkpoint) -> None:
    for name, module in root.named_modules():
        fill(module, f"{prefix}{name}." if name else prefix, ckpt)


def empty_tree(root: nn.Module, recurse: bool = True) -> None:
    """Give a module's parameters back to the meta device (their memory is freed); its children's too if `recurse`."""
    for module in root.modules() if recurse else [root]:
        for name, param in list(module._parameters.items()):
            if param is not None and not param.is_meta:
                module._parameters[name] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=False)
