"""SQLAlchemy's engine arguments as mysqlpool's: pool options, connect keywords, driver.

``create_async_engine`` takes SQLAlchemy's own arguments; the ``pool_*``
ones describe mysqlpool's pool here, and everything about connecting comes
from the URL (through the dialect, as SQLAlchemy itself would connect) and
``connect_args``. Every refusal names the argument it is about.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from sqlalchemy.engine import URL

__all__ = ["DRIVERS", "connect_kwargs", "mysqlpool_driver", "pool_options"]

#: SQLAlchemy URL driver -> the mysqlpool driver that opens its connections.
DRIVERS: dict[str, str] = {"aiomysql": "aiomysql", "asyncmy": "asyncmy"}

#: Drivers SQLAlchemy has that this mysqlpool can't drive, and why.
_NOT_YET: dict[str, str] = {}

#: create_engine arguments that would replace the pool or how it connects.
_OWNED = ("pool", "poolclass", "creator", "async_creator")

#: SQLAlchemy's pool argument -> mysqlpool's option of the same meaning.
_RENAMED = {
    "pool_size": "pool_size",
    "max_overflow": "max_overflow",
    "pool_timeout": "timeout",
    "pool_recycle": "recycle",
    "pool_pre_ping": "pre_ping",
    "pool_reset_on_return": "reset_on_return",
    "pool_use_lifo": "lifo",
}

_RESET_MODES: dict[Any, str | None] = {
    "rollback": "rollback",
    True: "rollback",
    "reset": "reset",
    None: None,
    False: None,
    "none": None,
}


def mysqlpool_driver(url: URL) -> str:
    """The mysqlpool driver for ``url``'s ``mysql+<driver>://``.

    Raises:
        ValueError: not a MySQL/MariaDB URL, or a driver mysqlpool can't drive.
    """
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend not in ("mysql", "mariadb"):
        raise ValueError(
            f"mysqlpool.sqlalchemy: a {backend}:// URL; mysqlpool pools MySQL and MariaDB "
            f"connections (mysql+aiomysql://...)"
        )
    if driver in DRIVERS:
        return DRIVERS[driver]
    supported = ", ".join(f"{backend}+{name}://" for name in DRIVERS)
    why = _NOT_YET.get(driver, "not an asyncio driver mysqlpool knows")
    raise ValueError(
        f"mysqlpool.sqlalchemy: {backend}+{driver}:// is not supported ({why}); use {supported}"
    )


def pool_options(kw: MutableMapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """mysqlpool's options from SQLAlchemy's ``pool_*`` arguments (removed from
    ``kw``) and ``mysqlpool_options`` (``extra``).

    Defaults are SQLAlchemy's, except ``pool_recycle``: mysqlpool's ``"auto"``
    (below the server's ``wait_timeout``) rather than never.

    Raises:
        ValueError: an argument that would replace the pool, a value
            mysqlpool has no equivalent for, or an option given both ways.
    """
    for name in _OWNED:
        if name in kw:
            raise ValueError(
                f"mysqlpool.sqlalchemy.create_async_engine() builds the pool itself: "
                f"{name}= can't be given (pass mysqlpool's options in mysqlpool_options=)"
            )
    options: dict[str, Any] = {"recycle": "auto"}
    for sa_name, name in _RENAMED.items():
        if sa_name not in kw:
            continue
        value = kw.pop(sa_name)
        if name in extra:
            raise ValueError(
                f"mysqlpool.sqlalchemy: {name} is given twice, as {sa_name}= and in "
                f"mysqlpool_options; give it once"
            )
        options[name] = _converted(sa_name, value)
    for name, value in extra.items():
        if name == "autocommit":
            raise ValueError(_AUTOCOMMIT)
        options[name] = _hosts(value) if name == "hosts" else value
    return options


def _converted(sa_name: str, value: Any) -> Any:
    if sa_name == "max_overflow" and value == -1:
        return None  # SQLAlchemy's "no limit"
    if sa_name == "pool_recycle" and isinstance(value, (int, float)) and value < 0:
        return None  # SQLAlchemy's "never"
    if sa_name == "pool_reset_on_return":
        key = value.lower() if isinstance(value, str) else value
        if key not in _RESET_MODES:
            raise ValueError(
                f"mysqlpool.sqlalchemy: pool_reset_on_return={value!r} is not supported; "
                f"use 'rollback' (the default: only when a transaction may be open), "
                f"'reset' (COM_RESET_CONNECTION) or None"
            )
        return _RESET_MODES[key]
    return value


def _hosts(value: Any) -> Any:
    """``"db1:3306,db2:3306"`` as the list mysqlpool takes."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


_AUTOCOMMIT = (
    "mysqlpool.sqlalchemy: autocommit can't be turned on for the whole pool: SQLAlchemy "
    "manages transactions itself (use execution_options(isolation_level='AUTOCOMMIT') "
    "on a connection for autocommit)"
)


def connect_kwargs(
    url_kwargs: Mapping[str, Any], connect_args: Mapping[str, Any]
) -> dict[str, Any]:
    """The driver's connect keywords: the dialect's reading of the URL, then
    ``connect_args``, with ``autocommit=False`` forced.

    Raises:
        ValueError: autocommit turned on, in the URL or ``connect_args``.
    """
    kwargs = {**url_kwargs, **connect_args}
    if kwargs.get("autocommit"):
        raise ValueError(_AUTOCOMMIT)
    # SQLAlchemy ends every transaction itself, and mysqlpool's own default
    # (autocommit on) would make its BEGIN-less transactions commit per statement.
    kwargs["autocommit"] = False
    return kwargs
