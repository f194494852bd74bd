"""Pool options given in a DSN's query string (``?pool_size=10&recycle=auto``).

They are taken out of the DSN before it is parsed into connection
parameters, so the connection identity (the pool key) never depends on
them. Values are only converted to Python types here; ``Pool`` checks
their ranges, so a bad value gets the same message wherever it came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ._config import PoolOptions
from ._query import query_items
from ._redaction import secret_candidates

__all__ = [
    "DSN_POOL_OPTIONS",
    "POOL_OPTION_DEFAULTS",
    "merge_dsn_options",
    "parse_bool",
    "split_pool_options",
]

#: Every option ``Pool`` takes besides the connection itself, with its default.
POOL_OPTION_DEFAULTS: dict[str, Any] = {
    field.name: field.default for field in dataclasses.fields(PoolOptions)
}

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_NONE = frozenset({"none", "null"})


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("is not an integer") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("is not a number of seconds") from None


def parse_bool(text: str) -> bool:
    """A DSN's boolean (pool and connection options alike)."""
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("is not a boolean (use true/false, 1/0, yes/no, on/off)")


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in _NONE else convert(text)

    return parse


def _recycle(text: str) -> Any:
    return "auto" if text.lower() == "auto" else _optional(_number)(text)


def _pre_ping(text: str) -> Any:
    lowered = text.lower()
    if lowered in _TRUE - {"1"} or lowered in _FALSE - {"0"}:
        return parse_bool(text)
    return _number(text)  # a threshold in seconds; "0" pings always


def _reset_mode(text: str) -> Any:
    return None if text.lower() in _NONE else text


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "pool_size": _integer,
    "max_overflow": _optional(_integer),
    "timeout": _optional(_number),
    "recycle": _recycle,
    "max_lifetime": _optional(_number),
    "pre_ping": _pre_ping,
    "reset_on_return": _reset_mode,
    "min_size": _integer,
    "reaper_interval": _optional(_number),
    "leak_timeout": _optional(_number),
    "lifo": parse_bool,
    "name": str,
    "kill_query_on_cancel": parse_bool,
    "load_balance": str,
    "target": str,
    "max_waiting": _optional(_integer),
}

#: The pool options a DSN's query string may set (not init, the hooks, clock).
DSN_POOL_OPTIONS: tuple[str, ...] = tuple(sorted(_CONVERTERS))


def split_pool_options(dsn: str) -> tuple[str, dict[str, Any]]:
    """Take the pool options out of ``dsn``'s query string.

    Returns the DSN without them (connection options stay, in order) and the
    options converted to Python types.

    Names and values are decoded as :func:`parse_dsn` decodes connection
    options: ``+`` is a space, and a stray ``%`` or invalid UTF-8 is an error.

    Raises:
        ValueError: an option given twice, a value of the wrong type, or a
            name or value that is not valid percent-encoding; the message
            names the option (when its name could be decoded) and never shows
            the rest of the DSN.
    """
    head, sep, query = dsn.partition("?")
    if not sep:
        return dsn, {}
    kept: list[str] = []
    options: dict[str, Any] = {}
    for item in query_items(query, secret_candidates(dsn)):
        name = item.name
        if name not in _CONVERTERS:
            kept.append(item.text)
            continue
        if name in options:
            raise ValueError(f"invalid DSN: pool option {name} given more than once")
        value = item.value()
        try:
            options[name] = _CONVERTERS[name](value)
        except ValueError as exc:
            raise ValueError(f"invalid DSN: pool option {name}={value!r} {exc}") from None
    # Empty items are not kept: parse_dsn ignores them anyway.
    rest = "&".join(kept)
    return (f"{head}?{rest}" if rest else head), options


def merge_dsn_options(given: dict[str, Any], from_dsn: dict[str, Any]) -> dict[str, Any]:
    """Pool options from the DSN replace defaults; one set both ways must agree.

    Raises:
        ValueError: an option given both ways, with different values.
    """
    merged = dict(given)
    for option, value in from_dsn.items():
        argument = given[option]
        if argument != POOL_OPTION_DEFAULTS[option] and argument != value:
            raise ValueError(
                f"{option} is given both in the DSN ({value!r}) and as an argument ({argument!r})"
            )
        merged[option] = value
    return merged
