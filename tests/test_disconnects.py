"""Which errors discard a connection, decided by error code, not exception class,
on each driver (aiomysql raises PyMySQL's errors, asyncmy its own)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

import drivers
from conftest import PoolFactory, scalar

# The same failures, as (error class name, args), raised by either driver.
LOSSES = [
    ("OperationalError", (2006, "MySQL server has gone away")),
    ("OperationalError", (2013, "Lost connection to MySQL server during query")),
    ("InternalError", (2014, "Command Out of Sync")),
    ("OperationalError", (2045, "Can't open shared memory; no answer from server")),
    ("OperationalError", (2055, "Lost connection to server at 'reading initial packet'")),
    ("OperationalError", (4031, "The client was disconnected by the server because of inactivity")),
    ("OperationalError", (1927, "Connection was killed")),
    ("OperationalError", (1053, "Server shutdown in progress")),
    ("InternalError", ("Packet sequence number wrong - got 3 expected 1",)),
    ("InterfaceError", ("(0, 'Not connected')",)),
    ("InterfaceError", (0, "Not connected")),  # asyncmy's spelling
    ("InterfaceError", (0, "Cancelled during execution")),  # asyncmy closed it on a cancel
    ("Error", ("Already closed",)),  # asyncmy's ping(reconnect=False) on a closed one
]
STATEMENT_ERRORS = [
    ("OperationalError", (1969, "Query execution was interrupted (max_statement_time exceeded)")),
    ("OperationalError", (3024, "Query execution was interrupted, maximum statement time")),
    ("OperationalError", (1317, "Query execution was interrupted")),
    ("ProgrammingError", (1064, "You have an error in your SQL syntax near 'Not connected'")),
    ("IntegrityError", (1062, "Duplicate entry")),
    ("OperationalError", (1213, "Deadlock found when trying to get lock")),
]
ERROR_MODULES = {"aiomysql": "pymysql.err", "asyncmy": "asyncmy.errors"}
SEAMS = {"aiomysql": "mysqlpool._driver_aiomysql", "asyncmy": "mysqlpool._driver_asyncmy"}


def on(driver: str, name: str, args: tuple[Any, ...]) -> tuple[Any, BaseException]:
    """The driver's seam, and its error ``name`` raised with ``args``."""
    pytest.importorskip(driver)
    seam = importlib.import_module(SEAMS[driver]).DRIVER
    error = getattr(importlib.import_module(ERROR_MODULES[driver]), name)(*args)
    return seam, error


@pytest.mark.parametrize("driver", drivers.DRIVERS)
@pytest.mark.parametrize(("name", "args"), LOSSES, ids=lambda value: str(value)[:30])
def test_connection_loss_errors_discard(driver: str, name: str, args: tuple[Any, ...]) -> None:
    seam, error = on(driver, name, args)
    assert seam.is_connection_lost(error)


@pytest.mark.parametrize("driver", drivers.DRIVERS)
@pytest.mark.parametrize(("name", "args"), STATEMENT_ERRORS, ids=lambda value: str(value)[:30])
def test_statement_errors_keep_the_connection(
    driver: str, name: str, args: tuple[Any, ...]
) -> None:
    seam, error = on(driver, name, args)
    assert not seam.is_connection_lost(error)


@pytest.mark.parametrize("driver", drivers.DRIVERS)
def test_errors_of_the_other_driver_or_none_keep_the_connection(driver: str) -> None:
    seam, _ = on(driver, "Error", ("x",))
    assert not seam.is_connection_lost(ValueError("not a driver error"))
    assert not seam.is_connection_lost(None)
    other = next(name for name in drivers.DRIVERS if name != driver)
    pytest.importorskip(other)
    foreign = importlib.import_module(ERROR_MODULES[other]).OperationalError(2013, "x")
    assert not seam.is_connection_lost(foreign)  # a pool only sees its own driver's errors


async def test_a_statement_timeout_keeps_the_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    seen: list[int] = []

    async def run_into_the_statement_timeout() -> None:
        async with pool.acquire() as conn:
            seen.append(conn.thread_id())
            await scalar(conn, "SET STATEMENT max_statement_time=0.05 FOR SELECT SLEEP(1)")

    with pytest.raises(drivers.errors().OperationalError) as interrupted:
        await run_into_the_statement_timeout()
    [first] = seen
    assert interrupted.value.args[0] == 1969
    async with pool.acquire() as conn:
        assert conn.thread_id() == first  # kept: the server only stopped the statement
        assert await scalar(conn, "SELECT 5") == 5
    assert pool.stats().discarded == 0
