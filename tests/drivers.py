"""Which driver the suite's pools run on: ``pytest --driver=asyncmy`` (or the
``MYSQLPOOL_TEST_DRIVER`` environment variable); aiomysql by default.

The conftest sets it once per run; tests ask for it through these helpers, so
the same test proves a guarantee on either driver.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from typing import Any

import pytest

DRIVERS = ("aiomysql", "asyncmy")
ENV = "MYSQLPOOL_TEST_DRIVER"

_current = {"name": os.environ.get(ENV) or "aiomysql"}

# The driver's error classes, by the names PyMySQL and asyncmy share.
_ERROR_MODULES = {"aiomysql": "pymysql.err", "asyncmy": "asyncmy.errors"}
_ERROR_NAMES = (
    "MySQLError",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "OperationalError",
    "InternalError",
    "ProgrammingError",
    "IntegrityError",
)


def choose(name: str) -> None:
    """Run this session's pools on driver ``name`` (the conftest calls it)."""
    if name not in DRIVERS:
        raise pytest.UsageError(f"--driver must be one of {', '.join(DRIVERS)}, got {name!r}")
    _current["name"] = name


def name() -> str:
    """The driver this run's pools use."""
    return _current["name"]


def on_driver(dsn: str) -> str:
    """``dsn`` (``mysql://...``) with the scheme of this run's driver."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or "+" in scheme or name() == "aiomysql":
        return dsn  # the default driver: the DSN as users write it
    return f"mysql+{name()}://{rest}"


@dataclass(frozen=True)
class DriverErrors:
    """One driver's error classes, by the names PyMySQL and asyncmy share."""

    MySQLError: type[Exception]
    Error: type[Exception]
    InterfaceError: type[Exception]
    DatabaseError: type[Exception]
    OperationalError: type[Exception]
    InternalError: type[Exception]
    ProgrammingError: type[Exception]
    IntegrityError: type[Exception]


def errors() -> DriverErrors:
    """This run's driver's error classes: ``errors().OperationalError``..."""
    module = importlib.import_module(_ERROR_MODULES[name()])
    return DriverErrors(**{error: getattr(module, error) for error in _ERROR_NAMES})


def only_on(driver: str, why: str) -> pytest.MarkDecorator:
    """Skip the test on the other driver, saying ``why``."""
    return pytest.mark.skipif(name() != driver, reason=f"{driver} only: {why}")


def seam() -> Any:
    """This run's implementation of the pool's driver seam (``is_dead``...)."""
    from mysqlpool._driver import IMPLEMENTATIONS

    return importlib.import_module(IMPLEMENTATIONS[name()]).DRIVER


def is_closed(conn: Any) -> bool:
    """Whether the driver's connection ``conn`` is closed (aiomysql says
    ``conn.closed``; asyncmy's ``connected`` stays true after ``close()``
    before 0.2.18, so its seam's liveness test tells)."""
    if name() == "asyncmy":
        return bool(seam().is_dead(conn))
    return bool(conn.closed)


async def open_cursor(conn: Any, cursor: Any = None) -> Any:
    """``await conn.cursor(cursor)`` as aiomysql spells it (asyncmy's cursor
    is awaitable only since 0.2.18: there it is the cursor itself)."""
    made = conn.cursor() if cursor is None else conn.cursor(cursor)
    return await made if inspect.isawaitable(made) else made


def cursor_class(cursor: str) -> Any:
    """This run's driver's cursor class ``cursor`` (``SSCursor``, ``DictCursor``...)."""
    module = "aiomysql" if name() == "aiomysql" else "asyncmy.cursors"
    return getattr(importlib.import_module(module), cursor)


def connection_class() -> Any:
    """This run's driver's connection class (what ``acquire()`` hands out)."""
    if name() == "asyncmy":
        return importlib.import_module("asyncmy").Connection
    return importlib.import_module("aiomysql").Connection


def port_of(conn: Any) -> int:
    """The port ``conn`` connected to (aiomysql: ``conn.port``; asyncmy keeps it private)."""
    return int(conn._port if name() == "asyncmy" else conn.port)


def cursor_keyword(cursor: str) -> dict[str, Any]:
    """The connect keyword that makes ``cursor`` the default cursor class
    (aiomysql's ``cursorclass``, asyncmy's ``cursor_cls``)."""
    keyword = "cursor_cls" if name() == "asyncmy" else "cursorclass"
    return {keyword: cursor_class(cursor)}
