"""The other keywords of the driver's ``connect`` (aiomysql's ``conv``,
``cursorclass``, ``echo``, ...; asyncmy's ``cursor_cls``, ``stmt_cache_size``,
...), which ConnectParams passes through as ``extra``: which there are, their
defaults, and how their values are kept so that a pool key cannot change
under them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from ._driver_names import DEFAULT_DRIVER, import_driver_package

__all__ = [
    "EXPLICIT",
    "aiomysql_keyword_defaults",
    "copy_value",
    "freeze",
    "keep_extras",
    "keyword_defaults",
]

#: Keywords ConnectParams handles itself; everything else aiomysql.connect
#: accepts (conv, cursorclass, echo, use_unicode, ...) goes to ``extra``.
EXPLICIT = (
    "host",
    "port",
    "user",
    "password",
    "db",
    "unix_socket",
    "charset",
    "sql_mode",
    "init_command",
    "connect_timeout",
    "autocommit",
    "local_infile",
    "ssl",
    "auth_plugin",
    "program_name",
    "server_public_key",
    "client_flag",
    "read_default_file",
    "read_default_group",
)


# Keywords of a driver's connect that a pool can't pass through: asyncmy's
# ``database`` is ConnectParams' ``db``; one ``sock`` can't make a pool's
# many connections.
_NOT_PASSED = frozenset({"loop", "database", "sock"})


@cache
def keyword_defaults(driver: str = DEFAULT_DRIVER) -> Mapping[str, Any]:
    """The keywords of ``driver``'s ``connect`` that ConnectParams passes
    through, with their defaults.

    Raises:
        DriverNotInstalled: the driver is not installed.
    """
    module = import_driver_package(driver)
    params = inspect.signature(module.connect).parameters
    return MappingProxyType(
        {
            name: p.default
            for name, p in params.items()
            if name not in EXPLICIT
            and name not in _NOT_PASSED
            and p.kind is p.POSITIONAL_OR_KEYWORD
        }
    )


def aiomysql_keyword_defaults() -> Mapping[str, Any]:
    """aiomysql.connect keywords ConnectParams passes through, with defaults."""
    return keyword_defaults("aiomysql")


def keep_extras(extra: Mapping[str, Any], driver: str = DEFAULT_DRIVER) -> dict[str, Any]:
    """The extra keywords to keep: checked, copied, and without those equal
    to the driver's default.

    Raises:
        TypeError: ``loop``, or a keyword the driver's ``connect`` does not take.
        DriverNotInstalled: extras were given for a driver that is not installed.
    """
    if not extra:
        return {}  # nothing to check: a driver not installed is not imported yet
    allowed = keyword_defaults(driver)
    for name in extra:
        if name == "loop":
            raise TypeError(
                "ConnectParams(): 'loop' is not accepted; connections use the running loop"
            )
        if name not in allowed:
            raise TypeError(
                f"ConnectParams() got an unexpected keyword argument {name!r} "
                f"(not one {driver}.connect takes)"
            )
    # Extras equal to the driver's default are dropped so that, e.g.,
    # echo=False and no echo at all share one key.
    return {
        name: copy_value(value)
        for name, value in extra.items()
        if not _same_as_default(value, allowed[name])
    }


def copy_value(value: Any) -> Any:
    """``value``, copied if it is a dict or a list."""
    # Shallow copies so that mutating a dict/list the caller passed in (or
    # got from connect_kwargs) cannot change a params object after its key
    # was computed.
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def freeze(value: Any) -> Any:
    """A hashable stand-in for ``value`` that is equal for equal values."""
    if isinstance(value, Mapping):
        return ("mapping", frozenset((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("sequence", tuple(freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        # Identity is the only safe equality for an unknown mutable object;
        # the ConnectParams keeps a reference, so the id cannot be reused
        # while the key is in use.
        return ("id", id(value))
    return value


def _same_as_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except Exception:
        return False
