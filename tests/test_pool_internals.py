"""What libraries built on the pool use: try_acquire(), release() with a
verdict, close_nowait(), check_invariants(), pool.options."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

import drivers
from conftest import Admin, PoolFactory, scalar
from mysqlpool import Pool, PoolClosed, PoolError, PoolOptions, PoolStats
from mysqlpool._stats import imbalances
from mysqlpool.testing import ManualClock
from polling import until

OFFLINE_DSN = "mysql://root@127.0.0.1:3306/test"  # never connected to


# -- try_acquire ------------------------------------------------------------------


async def test_try_acquire_hands_out_an_idle_connection_without_waiting(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    assert pool.try_acquire() is None  # nothing idle yet: it never opens one
    async with pool.acquire() as first:
        assert pool.try_acquire() is None  # all in use: it never waits
    conn = pool.try_acquire()
    assert conn is first
    assert await scalar(conn, "SELECT 1") == 1
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.acquires, stats.opened) == (1, 0, 2, 1)
    await pool.release(conn)
    assert pool.stats().idle == 1
    pool.check_invariants()


async def test_try_acquire_leaves_a_connection_that_needs_a_ping_to_acquire(
    make_pool: PoolFactory,
) -> None:
    clock = ManualClock()
    pool = await make_pool(pool_size=1, pre_ping=5, clock=clock)
    async with pool.acquire() as first:
        pass
    clock.advance(5)  # idle for pre_ping's threshold: it must be pinged first
    assert pool.try_acquire() is None
    async with pool.acquire() as conn:  # acquire() pings it and hands it out
        assert conn is first
    assert pool.stats().discarded == 0


def test_try_acquire_on_a_pool_never_opened_or_closed_gives_none() -> None:
    pool = Pool(OFFLINE_DSN)
    assert pool.try_acquire() is None
    pool.close_nowait()
    assert pool.try_acquire() is None


# -- release with a verdict -------------------------------------------------------


async def test_release_with_discard_closes_the_connection_and_frees_its_slot(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    conn = await pool.acquire()
    thread = conn.thread_id()
    waiter = asyncio.ensure_future(pool.acquire(timeout=5))
    await until(lambda: pool.stats().waiting == 1, "the second acquire waits")

    await pool.release(conn, discard=True)

    assert drivers.is_closed(conn)
    fresh = await asyncio.wait_for(waiter, 5)  # the freed slot went to the waiter
    assert fresh is not conn
    assert await scalar(fresh, "SELECT 1") == 1
    await pool.release(fresh)
    stats = pool.stats()
    assert (stats.discarded, stats.recycled, stats.opened, stats.open) == (1, 0, 2, 1)
    await until(lambda: _gone(admin, thread), "the discarded session ended")
    pool.check_invariants()


async def test_release_with_an_error_decides_as_leaving_async_with_would(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=2)
    conn = await pool.acquire()
    await pool.release(conn, error=ValueError("the caller's own bug"))
    assert pool.stats().idle == 1  # an ordinary error leaves the connection usable
    conn = await pool.acquire()
    await pool.release(conn, error=drivers.errors().OperationalError(2013, "Lost connection"))
    assert drivers.is_closed(conn)  # a connection-loss error: its state can't be trusted
    conn = await pool.acquire()
    await pool.release(conn, error=asyncio.CancelledError())
    assert drivers.is_closed(conn)  # an interruption: a reply may be half read
    stats = pool.stats()
    assert (stats.discarded, stats.idle, stats.open) == (2, 0, 0)
    pool.check_invariants()


async def test_a_second_release_with_a_verdict_is_refused(make_pool: PoolFactory) -> None:
    pool = await make_pool()
    conn = await pool.acquire()
    await pool.release(conn, discard=True)
    with pytest.raises(PoolError, match="already released"):
        await pool.release(conn, discard=True)


# -- close_nowait ---------------------------------------------------------------------


async def test_close_nowait_refuses_at_once_and_lets_holders_finish(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=2, max_overflow=0)
    held = await pool.acquire()
    idle = await pool.acquire()
    await pool.release(idle)
    second = await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire())
    await until(lambda: pool.stats().waiting == 1, "a third acquire waits")

    pool.close_nowait()  # synchronous: all of this has happened on return

    assert pool.closed
    assert pool.stats().waiting == 0
    with pytest.raises(PoolClosed):
        await waiter
    assert await scalar(held, "SELECT 1") == 1  # holders keep their connections
    await pool.release(second)
    assert drivers.is_closed(second)  # returned to a closed pool: closed
    closing = asyncio.ensure_future(pool.close(timeout=5))
    await asyncio.sleep(0)
    assert not closing.done()  # close() waits for the one still out
    await pool.release(held)
    await asyncio.wait_for(closing, 5)
    stats = pool.stats()
    assert (stats.open, stats.idle, stats.in_use, stats.discarded) == (0, 0, 0, 0)
    pool.close_nowait()  # idempotent
    pool.check_invariants()


# -- check_invariants and options -------------------------------------------------


def test_imbalances_name_what_is_inconsistent() -> None:
    books = PoolStats(
        name="p", pool_size=2, max_overflow=0, open=2, idle=1, in_use=1, opening=0,
        waiting=0, opened=3, closed=1, recycled=0, discarded=1, acquires=4, timeouts=0,
        wait_time=0.0,
    )
    assert imbalances(books, slots=2, closed=False) == ["open per host 0 != idle 1 + in_use 1"]
    wrong = dataclasses.replace(books, opened=4, waiting=1)
    problems = imbalances(wrong, slots=3, closed=True)
    assert "slots 3 != idle 1 + in_use 1 + opening 0" in problems
    assert "opened 4 - closed 1 != idle 1 + in_use 1" in problems
    assert "slots 3 > max 2" in problems
    assert "1 waiting while 1 idle" in problems
    assert "closed with 1 idle" in problems


async def test_pool_options_show_what_the_pool_uses(mysql_dsn: str) -> None:
    pool = Pool(mysql_dsn + ("&" if "?" in mysql_dsn else "?") + "pool_size=3", timeout=2)
    options = pool.options
    assert isinstance(options, PoolOptions)
    assert (options.pool_size, options.timeout, options.max_size) == (3, 2.0, 13)
    assert options.recycle == "auto"
    assert pool.recycle is None  # learnt at the first connect
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.pool_size = 4  # type: ignore[misc]
    with pytest.raises(ValueError, match="min_size"):
        options.replace(min_size=4)


async def _gone(admin: Admin, thread_id: int) -> bool:
    return not await admin.is_alive(thread_id)
