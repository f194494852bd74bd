"""Which errors discard a connection, decided by error code, not exception class."""

from __future__ import annotations

import pymysql
import pytest

from conftest import PoolFactory, scalar
from mysqlpool._driver_aiomysql import AIOMYSQL

OperationalError = pymysql.err.OperationalError
InterfaceError = pymysql.err.InterfaceError
InternalError = pymysql.err.InternalError


@pytest.mark.parametrize(
    "error",
    [
        OperationalError(2006, "MySQL server has gone away"),
        OperationalError(2013, "Lost connection to MySQL server during query"),
        InternalError(2014, "Command Out of Sync"),
        OperationalError(2045, "Can't open shared memory; no answer from server"),
        OperationalError(2055, "Lost connection to server at 'reading initial packet'"),
        OperationalError(4031, "The client was disconnected by the server because of inactivity"),
        OperationalError(1927, "Connection was killed"),
        OperationalError(1053, "Server shutdown in progress"),
        InternalError("Packet sequence number wrong - got 3 expected 1"),
        InterfaceError("(0, 'Not connected')"),
    ],
    ids=lambda e: str(e.args[0])[:30],
)
def test_connection_loss_errors_discard(error: pymysql.err.Error) -> None:
    assert AIOMYSQL.is_connection_lost(error)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError(1969, "Query execution was interrupted (max_statement_time exceeded)"),
        OperationalError(3024, "Query execution was interrupted, maximum statement time exceeded"),
        OperationalError(1317, "Query execution was interrupted"),
        pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"),
        pymysql.err.IntegrityError(1062, "Duplicate entry"),
        OperationalError(1213, "Deadlock found when trying to get lock"),
        ValueError("not a driver error"),
    ],
    ids=lambda e: str(e.args[0])[:30],
)
def test_statement_errors_keep_the_connection(error: BaseException) -> None:
    assert not AIOMYSQL.is_connection_lost(error)


async def test_a_statement_timeout_keeps_the_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    seen: list[int] = []

    async def run_into_the_statement_timeout() -> None:
        async with pool.acquire() as conn:
            seen.append(conn.thread_id())
            await scalar(conn, "SET STATEMENT max_statement_time=0.05 FOR SELECT SLEEP(1)")

    with pytest.raises(OperationalError) as interrupted:
        await run_into_the_statement_timeout()
    [first] = seen
    assert interrupted.value.args[0] == 1969
    async with pool.acquire() as conn:
        assert conn.thread_id() == first  # kept: the server only stopped the statement
        assert await scalar(conn, "SELECT 5") == 5
    assert pool.stats().discarded == 0
