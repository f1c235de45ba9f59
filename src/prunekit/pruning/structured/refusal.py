"""The last line of defence of channel pruning: an exception that is not a UserError becomes a one-line refusal.

Channel pruning runs on copies (transaction.py), so whatever fails, the user's model is as it was; what the user
needs then is one line naming the construct that could not be handled and the layer whose code raised, not a
traceback from inside Torch-Pruning or the model. Known failures are turned into precise refusals where they
happen; this wrapper catches the rest, and `blame_glob` turns one failing layer into an `ignore` pattern that
covers its siblings in every block, so that following the advice does not move the failure to the next block.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.safety import one_line

F = TypeVar("F", bound=Callable[..., Any])


def refusing(fn: F) -> F:
    """`fn(model, ...)` with every exception but UserError (and interrupts) raised as a UserError naming the
    model, the module whose code raised (when one did) and the original error."""

    @functools.wraps(fn)
    def wrapper(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(model, *args, **kwargs)
        except UserError:
            raise
        except Exception as exc:  # anything a user model or Torch-Pruning raises: one line, the model unchanged
            where = innermost_module(model, exc)
            at = f" in the code of {where!r}" if where else ""
            raise UserError(
                f"cannot prune channels of {type(model).__name__}: {type(exc).__name__}{at}: {one_line(exc)}; "
                "the model is unchanged (add that layer's block to ignore, or report the construct)"
            ) from exc

    return wrapper  # type: ignore[return-value]


def innermost_module(model: nn.Module, exc: BaseException) -> str | None:
    """The deepest module whose method the traceback passes through: its name in `model`, or its class name (the
    work happens on a copy, whose modules have no names in `model`)."""
    names = {id(m): n for n, m in model.named_modules()}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module):
            found = names.get(id(owner)) or type(owner).__name__
        tb = tb.tb_next
    return found or None


def blame_glob(culprit: str, others: Iterable[str]) -> str:
    """`culprit` with its block numbers as `*` when that pattern also names other groups that lost channels
    ('model.layers.*.self_attn.v_proj'), else `culprit` itself."""
    pattern = re.sub(r"(?:(?<=\.)|^)\d+(?=\.|$)", "*", culprit)
    if pattern == culprit:
        return culprit
    regex = re.compile("^" + re.escape(pattern).replace(r"\*", r"\d+") + "$")
    return pattern if any(regex.match(o) and o != culprit for o in others) else culprit
