"""Atomic channel pruning: all work happens on deep copies; the user's model changes only once everything succeeded.

Why copies rather than validating first and cutting in place: whether a thinner network still runs, keeps its
output shapes and computes what the original does with the removed channels zeroed is only known after the
cut, and Torch-Pruning's surgery cannot be undone. So tracing, scoring, surgery and every check run on a
`copy.deepcopy`; any exception leaves the original untouched. `commit` then moves the results into the
original module objects, so the model object and every submodule the user holds keep their identity:
- a parameter or buffer the surgery replaced becomes the module's new tensor (ties stay ties: one new tensor);
- one it did not replace keeps its original object (an optimizer or a tie elsewhere still sees it), its values
  updated in place if a criterion changed them (ThiNet's reconstruction);
- width attributes (in_features, out_channels, groups, num_heads, ...) and the class (pruned attention) follow;
- training flags and hooks stay the original's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.safety import one_line

_TENSOR_DICTS = ("_parameters", "_buffers")


class Transaction:
    """Deep copies of `models` to work on (`copies`); `commit()` makes the originals what the copies became."""

    def __init__(self, models: list[nn.Module]) -> None:
        self.originals = models
        self.memos: list[dict[int, Any]] = []
        self.copies: list[nn.Module] = []
        for model in models:
            memo: dict[int, Any] = {}
            try:
                self.copies.append(deep_copy(model, memo))
            except Exception as exc:  # any object a user model holds may refuse to be copied
                raise UserError(
                    f"cannot copy {type(model).__name__} to prune it atomically ({one_line(exc)}); channel pruning "
                    "works on a copy and changes the model only when everything succeeded"
                ) from exc
            self.memos.append(memo)

    def commit(self) -> None:
        plans = [_plan(o, c, m) for o, c, m in zip(self.originals, self.copies, self.memos, strict=True)]
        for updates, copies in plans:  # nothing below can fail: assignments and copies prepared above
            with torch.no_grad():
                for dst, src in copies:
                    dst.copy_(src)
            for module, values, cls in updates:
                module.__dict__.update(values)
                if cls is not type(module):
                    module.__class__ = cls


def deep_copy(model: nn.Module, memo: dict[int, Any] | None = None) -> nn.Module:
    """`copy.deepcopy(model)`, with tensors that are not graph leaves held in module attributes (attention-bias
    caches a forward fills, LeViT's `ab`) copied detached: deepcopy refuses them, and their values are what
    matters."""
    memo = {} if memo is None else memo
    for module in model.modules():
        for key, value in module.__dict__.items():
            if key not in ("_parameters", "_buffers", "_modules"):
                _detached(value, memo, 0)
    return copy.deepcopy(model, memo)


def _detached(value: Any, memo: dict[int, Any], depth: int) -> None:
    if isinstance(value, torch.Tensor):
        if value.grad_fn is not None and id(value) not in memo:
            memo[id(value)] = value.detach().clone()
    elif depth < 3 and isinstance(value, dict):
        for item in value.values():
            _detached(item, memo, depth + 1)
    elif depth < 3 and isinstance(value, list | tuple):
        for item in value:
            _detached(item, memo, depth + 1)


def _plan(original: nn.Module, work: nn.Module, memo: dict[int, Any]) -> tuple[list, list]:
    before = dict(original.named_modules(remove_duplicate=False))
    after = dict(work.named_modules(remove_duplicate=False))
    if before.keys() != after.keys():
        raise RuntimeError("channel surgery changed the module tree")
    plan, copies, seen = [], [], set()
    for name, module in before.items():
        if id(module) in seen:
            continue
        seen.add(id(module))
        done = after[name]
        updates = {key: _tensors(module, done, key, memo, copies) for key in _TENSOR_DICTS}
        for key, value in done.__dict__.items():
            if key in _TENSOR_DICTS or key in ("_modules", "training") or "hook" in key:
                continue
            old = module.__dict__.get(key, _MISSING)
            if value is not old and memo.get(id(old)) is not value:
                updates[key] = value
        plan.append((module, updates, type(done)))
    return plan, copies


def _tensors(module: nn.Module, done: nn.Module, key: str, memo: dict[int, Any], copies: list) -> dict[str, Any]:
    """The module's new parameter (or buffer) dict: replaced tensors from the copy, untouched ones the original's
    (their new values, if a criterion changed them, added to `copies`)."""
    old, new = module.__dict__[key], done.__dict__[key]
    out = {}
    for name, tensor in new.items():
        kept = old.get(name)
        if kept is not None and tensor is not None and memo.get(id(kept)) is tensor:
            if not torch.equal(kept.detach(), tensor.detach()):
                copies.append((kept, tensor.detach()))
            out[name] = kept
        else:
            out[name] = tensor
    return out


_MISSING = object()
