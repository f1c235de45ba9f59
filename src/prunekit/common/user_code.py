"""User code, imported only when the user names it: `module:factory` references and the modules allowed to load.

A config may name `model.name: "package.module:factory"` (and `data.name` likewise); runs and model files record
that name (with the keyword arguments that built the model) so they can be rebuilt. Reading a name never imports
anything: a reference resolves only if its module (or a package above it) was named by the user, with
`prunekit ... --import package.module` on the command line or `imports=[...]` in Python (`allow`). The current
directory is searched first, as `python -m` does, so a module next to the config is found.

Signatures: a model factory is called as `factory(**model.args)` and returns an nn.Module (a parameter named
`num_classes` or `input_shape` that model.args leaves out is filled from the data when the data knows it). A data
factory is called as `factory(**data.args)`; see prunekit.tasks.from_config for what it may return.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.safety import one_line

_MODULE = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
REF = re.compile(rf"^({_MODULE}):({_MODULE})$")
MODULE = re.compile(rf"^{_MODULE}$")
_ALLOWED: set[str] = set()


def is_ref(name: Any) -> bool:
    """Whether `name` is a `module:attribute` reference (zoo names never contain a colon)."""
    return isinstance(name, str) and ":" in name


def allow(modules: Iterable[str] | None) -> None:
    """Import the modules the user named and let references into them resolve (for the rest of the process)."""
    for name in modules or ():
        if not isinstance(name, str) or not MODULE.match(name):
            raise UserError(f"--import {name!r}: not a module name (e.g. mypackage.models)")
        _import(name, f"--import {name}")
        _ALLOWED.add(name)


def allowed(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _ALLOWED)


def _import(module: str, what: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except Exception as exc:  # the user's module: any error while importing it is bad input, named as such
        raise UserError(f"{what}: cannot import {module}: {type(exc).__name__}: {one_line(exc)}") from None


def resolve(ref: str, source: str = "") -> Callable[..., Any]:
    """The callable `ref` names, if the user allowed its module; else a one-line error naming the flag.
    `source` (the file or run that names it) prefixes errors."""
    where = f"{source}: " if source else ""
    match = REF.match(ref) if isinstance(ref, str) else None
    if match is None:
        raise UserError(f"{where}{ref!r} is not a reference of the form package.module:factory")
    module, attr = match.groups()
    if not allowed(module):
        raise UserError(
            f"{where}{ref} is user code, which prunekit imports only when you name it: pass --import {module} "
            f"(in Python: imports=[{module!r}])"
        )
    obj = _import(module, source or ref)
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UserError(f"{where}module {module} has no attribute {attr}")
    if not callable(obj):
        raise UserError(f"{where}{ref} is a {type(obj).__name__}, not a function or class")
    return obj


def call(factory: Callable[..., Any], args: dict[str, Any], ref: str) -> Any:
    """factory(**args), with the user's own errors reported as bad input naming the reference."""
    try:
        return factory(**args)
    except UserError:
        raise
    except Exception as exc:  # the user's factory: whatever it raises is reported as one line naming it
        raise UserError(f"{ref}(**{sorted(args)}) failed: {type(exc).__name__}: {one_line(exc)}") from None


def build_model(name: str, args: dict[str, Any] | None = None, example: Any = None, source: str = "") -> nn.Module:
    """The model `name` (a reference) builds from `args`, tagged with the `arch` that rebuilds it."""
    args = dict(args or {})
    model = call(resolve(name, source), args, name)
    if not isinstance(model, nn.Module):
        raise UserError(f"{name} returned a {type(model).__name__}, not an nn.Module")
    model.arch = {"name": name, "args": args, **({"example": example} if example is not None else {})}
    return model
