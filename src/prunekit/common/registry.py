"""One small registry for models, datasets, criteria, allocations and methods."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Generic, TypeVar

from prunekit.common.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to builders; unknown names fail with the close matches and the known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            shown = str(name)[:100]  # names can come from files and configs: never quote or compare a huge one
            close = difflib.get_close_matches(shown, self._items, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UserError(f"unknown {self.kind} {shown!r}: {hint}known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items
