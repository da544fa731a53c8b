"""Named registries with did-you-mean lookups, used for suites, losses, parsers, metrics and backends."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """' did you mean 'x'?' or '' when nothing is close; for error messages."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class UnknownName(KeyError):
    def __str__(self) -> str:  # KeyError quotes its arg; we want a readable line
        return str(self.args[0])


class Registry(Generic[T]):
    """A name -> object map. Duplicate names raise; unknown names suggest the closest.

    Entries may be registered lazily as "module:attr" strings so that looking up one
    entry never imports the heavy dependencies of another.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T | str] = {}

    def add(self, name: str, obj: T | str) -> None:
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} '{name}'")
        self._items[name] = obj

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            obj = self._items[name]
        except KeyError:
            raise UnknownName(
                f"unknown {self.kind} '{name}'{did_you_mean(name, list(self._items))}"
                f" (known: {', '.join(sorted(self._items))})") from None
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._items[name] = obj
        return obj  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
