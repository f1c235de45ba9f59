"""The last line of defence of channel pruning: what the user's model (or Torch-Pruning on it) raises becomes a
one-line refusal; what prunekit's own code raises stays an exception (a bug: the CLI exits 1 with "internal error").

Channel pruning runs on copies (transaction.py), so whatever fails, the user's model is as it was; what the user
needs then is one line naming the construct that could not be handled and the layer whose code raised, not a
traceback from inside Torch-Pruning or the model. Known failures are turned into precise refusals where they
happen; this wrapper catches the rest. Which side an exception is on is read off its traceback: the innermost
frame outside torch and the standard library (those run on behalf of whoever called them) is either prunekit's
own code, a bug to report, or someone else's (the model's forward, transformers, Torch-Pruning, a criterion the
user wrote), a property of the model. `blame_glob` turns one failing layer into an `ignore` pattern that covers
its siblings in every block, and `Blamed` carries it to `prune_channels`, which keeps such groups whole and
tries again (`skipped_reason` says so in the report).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import sysconfig
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.safe_text import clip
from prunekit.common.safety import one_line
from prunekit.pruning.structured.report import ChannelReport

F = TypeVar("F", bound=Callable[..., Any])


def refusing(fn: F) -> F:
    """`fn(model, ...)` with every exception raised by code other than prunekit's (`internal`) raised as a UserError
    naming the model, the module whose code raised (when one did) and the original error; prunekit's own pass."""

    @functools.wraps(fn)
    def wrapper(model: nn.Module, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(model, *args, **kwargs)
        except UserError:
            raise
        except Exception as exc:  # a user model or Torch-Pruning: one line, the model unchanged; prunekit's: a bug
            if internal(exc):
                raise
            where = innermost_module(model, exc)
            at = f" in the code of {where!r}" if where else ""
            raise UserError(
                f"cannot prune channels of {type(model).__name__}: {type(exc).__name__}{at}: {one_line(exc)}; "
                "the model is unchanged (add that layer's block to ignore, or report the construct)"
            ) from exc

    return wrapper  # type: ignore[return-value]


_PRUNEKIT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep
_ON_BEHALF = tuple(
    os.path.realpath(d) + os.sep for d in (os.path.dirname(torch.__file__), sysconfig.get_paths()["stdlib"])
)


def internal(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc`'s traceback outside torch and the standard library is prunekit's."""
    last = None
    tb = exc.__traceback__
    while tb is not None:
        path = os.path.realpath(tb.tb_frame.f_code.co_filename)
        if not path.startswith(_ON_BEHALF):
            last = path
        tb = tb.tb_next
    return last is not None and last.startswith(os.path.realpath(_PRUNEKIT) + os.sep)


class Blamed(UserError):
    """A cut failed, and removing the channels of one group alone (`culprit`) makes it fail: `advice` is the
    `ignore` pattern that keeps it (and its siblings in other blocks) whole; `failure` what failed."""

    def __init__(self, failure: UserError, culprit: str, advice: str) -> None:
        super().__init__(f"{failure} (removing channels of {culprit!r} alone causes it: add {advice!r} to ignore)")
        self.failure, self.culprit, self.advice = str(failure), culprit, advice


def skipped_reason(blamed: Blamed) -> str:
    """Why a group kept whole automatically stays whole, in the report."""
    return (
        f"kept whole automatically: removing channels of {blamed.culprit!r} alone breaks the model "
        f"({clip(blamed.failure, 160)}); add {blamed.advice!r} to ignore to skip this check"
    )


def after_skips(refusal: UserError, skipped: list[Blamed]) -> str:
    """A refusal's message after automatic skips: groups they kept whole are not said to be "in ignore" (the user
    did not put them there), and what each skip was for follows."""
    text = _IN_IGNORE.sub(lambda m: _automatic(m, skipped), str(refusal))
    return text + "".join(f"; before that, kept whole automatically: {b}" for b in skipped)


def mark_skipped(report: ChannelReport, skipped: list[Blamed]) -> ChannelReport:
    """The report with the groups kept whole because of an automatic skip saying so (not merely "in ignore")."""
    for name, why in report.whole.items():
        match = _IN_IGNORE.fullmatch(why)
        blamed = next((b for b in skipped if match and _covers(b.advice, match.group(1))), None)
        if blamed is not None:
            report.whole[name] = skipped_reason(blamed)
    return report


_IN_IGNORE = re.compile(r"the width of '([^']+)' stays \(in ignore\)")


def _covers(pattern: str, layer: str) -> bool:
    return fnmatch.fnmatchcase(layer, pattern) or layer.startswith(pattern + ".")


def _automatic(match: re.Match, skipped: list[Blamed]) -> str:
    if any(_covers(b.advice, match.group(1)) for b in skipped):
        return f"the width of {match.group(1)!r} stays (kept whole automatically)"
    return match.group(0)


def nothing_to_prune(model: nn.Module, whole: dict[str, str]) -> str:
    """The refusal when every channel group stays whole: the first reasons, the width ones last."""
    reasons = sorted(dict.fromkeys(whole.values()), key=lambda why: why.startswith("the width of"))
    if not reasons:
        return f"cannot prune channels of {type(model).__name__}: it has no channel group to prune"
    more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
    return (
        f"cannot prune channels of {type(model).__name__}: every channel group stays whole: "
        + "; ".join(reasons[:3])
        + more
    )


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
    if pattern == culprit or "." not in culprit:  # '0' of a Sequential: '*' would name every layer
        return culprit
    regex = re.compile("^" + re.escape(pattern).replace(r"\*", r"\d+") + "$")
    return pattern if any(regex.match(o) and o != culprit for o in others) else culprit
