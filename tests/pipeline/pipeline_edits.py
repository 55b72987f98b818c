"""Edits of a pipeline's dict form, for the tests that check validation messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def set_at(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """A function that sets ``value`` at ``path`` (keys / list indices) of a pipeline dict."""

    def mod(d: dict[str, Any]) -> None:
        target: Any = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mod
