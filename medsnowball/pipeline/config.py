"""Build typed, frozen step configs from YAML mappings, with errors that name the key.

Every pipeline step declares its options as a frozen dataclass. :func:`build_config`
turns a plain mapping (parsed YAML) into that dataclass, checking each value against the
field's type annotation; every problem becomes a :class:`~medsnowball.core.errors.ConfigError`
whose message starts with the key path, e.g.::

    steps[3].config.max_candidatez: unknown key; did you mean max_candidates?

Range checks live in the dataclass's ``__post_init__``: raise :class:`FieldError` (a
``ValueError`` carrying the field name) so the message is prefixed with the right path.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union

from medsnowball.core.errors import ConfigError

__all__ = [
    "FieldError",
    "build_config",
    "check_keys",
    "config_to_dict",
    "did_you_mean",
    "require",
]

T = TypeVar("T")


class FieldError(ValueError):
    """A config value is out of range; raised from a config dataclass's ``__post_init__``.

    Args:
        field: Name of the offending field.
        message: What was expected and what was found.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def require(condition: bool, field: str, message: str) -> None:
    """Raise :class:`FieldError` for ``field`` unless ``condition`` holds.

    Args:
        condition: The check that must be true.
        field: Field name reported on failure.
        message: Explanation (expected vs found).

    Raises:
        FieldError: When ``condition`` is false.
    """
    if not condition:
        raise FieldError(field, message)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean X?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def check_keys(mapping: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """Raise :class:`ConfigError` for the first key of ``mapping`` not in ``allowed``.

    Args:
        mapping: The parsed YAML mapping.
        allowed: Keys that are valid at this place.
        path: Key path of ``mapping`` (``""`` for the document root).

    Raises:
        ConfigError: Names the unknown key, its path and the closest valid key.
    """
    allowed = list(allowed)
    for key in mapping:
        if not isinstance(key, str):
            raise ConfigError(f"{_join(path, str(key))}: keys must be strings, found {key!r}.")
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f" (valid keys: {', '.join(allowed)})"
            raise ConfigError(f"{_join(path, key)}: unknown key{hint}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_type_name(a) for a in args)})"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert it (lists -> tuples, int -> float)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_type_name(tp)}, found {value!r}.")
    if origin is Literal:
        choices = typing.get_args(tp)
        if not any(value == c and type(value) is type(c) for c in choices):
            hint = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
            raise ConfigError(f"{path}: expected {_type_name(tp)}, found {value!r}{hint or '.'}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, found {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(
                f"{path}: expected {_type_name(tp)}, found {len(value)} values {list(value)!r}."
            )
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in pairs)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, found {value!r}.")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, found {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, found {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, found {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, found {value!r}.")
        return value
    raise ConfigError(f"{path}: field type {tp!r} is not supported in pipeline configs.")


def build_config(cls: type[T], mapping: Mapping[str, Any] | None, path: str) -> T:
    """Create the frozen config dataclass ``cls`` from a YAML mapping.

    Args:
        cls: A dataclass type whose fields all have defaults or are given in ``mapping``.
        mapping: Parsed YAML values (``None`` means all defaults).
        path: Key path of the mapping, used in error messages (e.g. ``"steps[3].config"``).

    Returns:
        The config instance.

    Raises:
        ConfigError: Unknown key, wrong type, missing required key, or a range check
            (:class:`FieldError` from ``__post_init__``) failed; the message names the key.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass.")
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{path}: expected a mapping of options, found {mapping!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(mapping, fields, path)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in mapping:
            kwargs[name] = _coerce(mapping[name], hints[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(path, name)}: required key is missing.")
    try:
        return cls(**kwargs)
    except FieldError as exc:
        msg = exc.message if exc.message.endswith((".", "?", "!")) else exc.message + "."
        raise ConfigError(f"{_join(path, exc.field)}: {msg}") from exc


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a YAML-friendly dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}
