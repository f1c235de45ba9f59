"""User code, imported only when the user names it: `module:factory` references and the modules allowed to load.

A config may name `model.name: "package.module:factory"` (and `data.name` likewise); runs and model files record
that name (with the keyword arguments that built the model) so they can be rebuilt. Reading a name never imports
anything. A reference resolves only to a function or class that is a plain attribute of the module named before the
colon and defined there (its `__module__` is that module: no attribute chains, no names the module imported from
elsewhere such as `os.system`), and only if the user named exactly that module, with `prunekit ... --import
package.module` on the command line or `imports=[...]` in Python (`allow`); a package's submodules need naming too.
A named module is found where Python finds installed modules; only when it is not found there is the current
directory searched, and then it is appended to the end of the import path (for the module's own siblings), so a file
in the current directory never shadows an installed package (a `matplotlib.py` beside a run directory stays inert).

Signatures: a model factory is called as `factory(**model.args)` and returns an nn.Module (a parameter named
`num_classes` or `input_shape` that model.args leaves out is filled from the data when the data knows it). A data
factory is called as `factory(**data.args)`; see prunekit.tasks.from_config for what it may return.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import types
from collections.abc import Callable, Iterable
from importlib.machinery import PathFinder
from typing import Any

from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.safety import one_line

_NAME = r"[A-Za-z_]\w*"
_MODULE = rf"{_NAME}(?:\.{_NAME})*"
REF = re.compile(rf"^({_MODULE}):({_NAME})$")
MODULE = re.compile(rf"^{_MODULE}$")
_ALLOWED: set[str] = set()


def is_ref(name: Any) -> bool:
    """Whether `name` is a `module:attribute` reference (zoo names never contain a colon)."""
    return isinstance(name, str) and ":" in name


def allow(modules: Iterable[str] | None) -> None:
    """Import the modules the user named and let references into exactly them resolve (for the rest of the process)."""
    for name in modules or ():
        if not isinstance(name, str) or not MODULE.fullmatch(name) or len(name) > 200:
            raise UserError(f"--import {str(name)[:80]!r}: not a module name (e.g. mypackage.models)")
        _import(name, f"--import {name}")
        _ALLOWED.add(name)


def allowed(module: str) -> bool:
    """Whether the user named exactly `module` (a package's submodules are not named by naming the package)."""
    return module in _ALLOWED


def _findable(top: str) -> bool:
    """Whether Python finds the top-level module `top` on the import path as it stands (installed or already loaded)."""
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _import(module: str, what: str) -> Any:
    """Import a module the user named. The current directory is searched only for a top-level module Python does
    not find otherwise, and then it goes last on the path, so it never shadows an installed package."""
    top = module.split(".", 1)[0]
    if not _findable(top):
        cwd = os.getcwd()
        if PathFinder.find_spec(top, [cwd]) is not None and cwd not in sys.path:
            sys.path.append(cwd)
    try:
        return importlib.import_module(module)
    except Exception as exc:  # the user's module: any error while importing it is bad input, named as such
        raise UserError(f"{what}: cannot import {module}: {type(exc).__name__}: {one_line(exc)}") from None


def resolve(ref: str, source: str = "") -> Callable[..., Any]:
    """The function or class `ref` names, if the user named its module and the module defines it; else a one-line
    error. `source` (the file or run that names it) prefixes errors."""
    where = f"{source}: " if source else ""
    match = REF.fullmatch(ref) if isinstance(ref, str) and len(ref) <= 300 else None
    if match is None:
        shown = repr(ref[:80] + "...") if isinstance(ref, str) and len(ref) > 80 else repr(ref)
        raise UserError(
            f"{where}{shown} is not a reference of the form package.module:factory (one name after the colon)"
        )
    module, attr = match.groups()
    if not allowed(module):
        raise UserError(
            f"{where}{ref} is user code, which prunekit imports only when you name it: pass --import {module} "
            f"(in Python: imports=[{module!r}])"
        )
    mod = _import(module, source or ref)
    obj = vars(mod).get(attr)  # a plain attribute: no module __getattr__, no builtins
    if obj is None or attr.startswith("__"):
        raise UserError(f"{where}{ref}: module {module} has no attribute {attr}")
    if not isinstance(obj, type | types.FunctionType):
        raise UserError(f"{where}{ref} is a {type(obj).__name__}, not a function or class defined in {module}")
    if getattr(obj, "__module__", None) != module:
        raise UserError(
            f"{where}{ref} is defined in {str(getattr(obj, '__module__', '?'))[:80]}, not in {module}: a reference "
            f"names a function or class of the module you named with --import, never one it imported"
        )
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
