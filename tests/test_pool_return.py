"""What a connection's return does when its state is in doubt (issue 13).

An exception the driver raised while reading a reply leaves the protocol
mid-reply: the connection is closed, not reset. A reset or rollback on
return never waits longer than the pool's ``timeout``: a stuck one closes
the connection. An SQL error, or an error of the holder's own code, leaves
the connection usable: it is reset and reused.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from pymysql.constants import CLIENT

import drivers
from conftest import PoolFactory, scalar
from faultproxy import FaultProxy
from mysqlpool import Pool, parse_dsn
from mysqlpool._deadline import RETURN_FLOOR, RETURN_LIMIT, limited, return_limit


class Discards:
    """An ``on_discard`` hook that keeps the reasons."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, conn: Any, reason: str) -> None:
        self.reasons.append(reason)


@pytest_asyncio.fixture
async def proxy(mysql_dsn: str) -> AsyncIterator[FaultProxy]:
    params = parse_dsn(mysql_dsn)
    async with FaultProxy(params.host, params.port) as fault_proxy:
        yield fault_proxy


async def inside(pool: Pool, work: Callable[[Any], Awaitable[None]]) -> None:
    """``work(conn)`` inside ``async with pool.acquire() as conn``."""
    async with pool.acquire() as conn:
        await work(conn)


async def refused_load_data_local(conn: Any) -> None:
    """``LOAD DATA LOCAL`` on a connection that announced LOCAL_FILES but
    refuses to send the file: aiomysql raises RuntimeError part-way through
    the reply, and the server is left waiting for the file's data."""
    await scalar(conn, "CREATE TEMPORARY TABLE IF NOT EXISTS t_infile (a INT)")
    async with conn.cursor() as cur:
        await cur.execute("LOAD DATA LOCAL INFILE '/nonexistent' INTO TABLE t_infile")


@pytest.mark.parametrize("reset_on_return", ["reset", "rollback"])
async def test_an_error_raised_mid_reply_closes_the_connection_instead_of_resetting_it(
    make_pool: PoolFactory, reset_on_return: str
) -> None:
    discards = Discards()
    pool = await make_pool(
        pool_size=1,
        max_overflow=0,
        client_flag=CLIENT.LOCAL_FILES,  # local_infile stays False
        reset_on_return=reset_on_return,
        autocommit=False,
        on_discard=discards,
    )
    async with pool.acquire() as conn:
        first = conn.thread_id()
    with pytest.raises(RuntimeError, match="local_infile option is false"):
        await inside(pool, refused_load_data_local)
    assert discards.reasons == ["raised mid-reply (RuntimeError)"]

    async with pool.acquire() as conn:
        assert conn.thread_id() != first
        assert await scalar(conn, "SELECT 1") == 1
    assert pool.stats().discarded == 1


async def test_an_sql_error_or_the_holders_own_error_keeps_the_connection(
    make_pool: PoolFactory,
) -> None:
    discards = Discards()
    pool = await make_pool(
        pool_size=1, max_overflow=0, reset_on_return="reset", on_discard=discards
    )
    async with pool.acquire() as conn:
        first = conn.thread_id()

    async def missing_table(conn: Any) -> None:
        await scalar(conn, "SELECT * FROM no_such_table_issue13")

    async def application_error(conn: Any) -> None:
        raise ValueError("the application's own error")

    with pytest.raises(drivers.errors().ProgrammingError, match="no_such_table_issue13"):
        await inside(pool, missing_table)
    with pytest.raises(ValueError, match="application's own"):
        await inside(pool, application_error)
    async with pool.acquire() as conn:
        assert conn.thread_id() == first
    assert discards.reasons == []
    assert pool.stats().opened == 1


@pytest.mark.parametrize("reset_on_return", ["reset", "rollback"])
async def test_a_reset_that_gets_no_answer_closes_the_connection_within_the_timeout(
    make_pool: PoolFactory, mysql_dsn: str, proxy: FaultProxy, reset_on_return: str
) -> None:
    discards = Discards()
    pool = await make_pool(
        proxy.dsn(mysql_dsn),
        pool_size=1,
        max_overflow=0,
        timeout=1.0,
        reset_on_return=reset_on_return,
        autocommit=False,
        on_discard=discards,
    )
    conn = await pool.acquire()
    await scalar(conn, "SELECT 1")  # a snapshot is open: "rollback" must roll back too
    proxy.blackhole()  # the server's answers stop coming

    # A hang guard, far above the pool's timeout: the return itself is bounded.
    await asyncio.wait_for(pool.release(conn), 30)

    assert discards.reasons == ["reset timed out"]
    assert drivers.is_closed(conn)
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.discarded) == (0, 0, 1)


def test_a_return_waits_the_pools_timeout_at_least_a_second_else_thirty() -> None:
    assert return_limit(5.0) == 5.0
    assert return_limit(0.0) == RETURN_FLOOR == 1.0  # timeout=0: never wait to acquire
    assert return_limit(None) == RETURN_LIMIT == 30.0


async def test_the_returns_bound_times_out_a_stuck_step_and_lets_a_cancel_through() -> None:
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError, match=r"took over 0\.05 s"):
        await limited(never, 0.05)
    assert never.cancelled()  # the step was stopped
    task = asyncio.current_task()
    assert task is not None
    if sys.version_info >= (3, 11):
        assert task.cancelling() == 0  # the bound's own cancel was taken back

    async def waits_long() -> None:
        await limited(asyncio.get_running_loop().create_future(), 30)

    waiting = asyncio.ensure_future(waits_long())
    await asyncio.sleep(0)  # it is waiting inside the bound
    waiting.cancel()  # a cancel from outside is a cancel, not a timeout
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await limited(asyncio.sleep(0, "done"), 1) == "done"
