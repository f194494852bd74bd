"""The reaper: between uses it closes idle connections that are past recycle or
max_lifetime or dead, reopens up to ``min_size``, survives a failed pass, never
touches a checked-out connection, and ends with the pool.

No test here calls ``acquire()`` to make the reaper act: its effects are
awaited by polling the pool's own state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from conftest import Admin, PoolFactory, scalar
from mysqlpool import Pool
from mysqlpool._backoff import BACKOFF_CAP, BACKOFF_FIRST, backoff_delay
from polling import pool_tasks, until

RECYCLE = 0.3  # seconds
INTERVAL = 0.05  # reaper_interval: several passes per RECYCLE


# -- helpers --------------------------------------------------------------------




async def gone(admin: Admin, thread_id: int) -> bool:
    """True once the server has no session with this thread id."""
    return not await admin.is_alive(thread_id)


# -- recycling between uses -------------------------------------------------------


async def test_reaper_recycles_an_idle_connection_with_no_acquire(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(recycle=RECYCLE, reaper_interval=0.1)
    async with pool.acquire() as conn:
        thread = conn.thread_id()
    assert len(pool) == 1

    await until(lambda: len(pool) == 0 and pool.stats().recycled == 1, "reaped")
    stats = pool.stats()
    assert (stats.open, stats.discarded, stats.acquires) == (0, 0, 1)
    pool.check_invariants()
    await until(lambda: gone(admin, thread), f"server thread {thread} gone")


async def test_reaper_interval_defaults_from_recycle(make_pool: PoolFactory) -> None:
    # recycle=0.2 and no reaper_interval: the reaper must still come by soon
    # (a quarter of recycle), not once a minute.
    pool = await make_pool(recycle=0.2)
    async with pool.acquire():
        pass
    await until(lambda: pool.stats().recycled == 1, "reaped", timeout=1.0)
    assert len(pool) == 0


async def test_reaper_recycles_idle_connections_past_max_lifetime(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(recycle=None, max_lifetime=RECYCLE, reaper_interval=INTERVAL)
    async with pool.acquire():
        pass
    await until(lambda: len(pool) == 0 and pool.stats().recycled == 1, "reaped")
    assert pool.stats().discarded == 0


async def test_reaper_never_touches_a_checked_out_connection(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(recycle=RECYCLE, reaper_interval=INTERVAL)
    held = await pool.acquire()
    held_thread = held.thread_id()
    # A witness, idle while `held` is out and aged just as much: once the
    # reaper has taken it, the reaper has seen `held` past recycle too.
    async with pool.acquire():
        pass
    await until(lambda: pool.stats().recycled == 1 and len(pool) == 0, "witness reaped")
    await asyncio.sleep(4 * INTERVAL)  # wall time: a few more reaper passes

    assert await scalar(held, "SELECT CONNECTION_ID()") == held_thread
    assert await admin.is_alive(held_thread)
    stats = pool.stats()
    assert (stats.in_use, stats.recycled, stats.discarded) == (1, 1, 0)
    pool.check_invariants()

    await pool.release(held)  # past recycle: closed now that it is back
    stats = pool.stats()
    assert (stats.open, stats.recycled) == (0, 2)
    pool.check_invariants()


# -- min_size -------------------------------------------------------------------


async def test_min_size_connections_are_open_right_after_open(make_pool: PoolFactory) -> None:
    pool = await make_pool(min_size=2)
    stats = pool.stats()
    assert (len(pool), stats.opened, stats.in_use, stats.acquires) == (2, 2, 0, 0)
    pool.check_invariants()


async def test_reaper_replaces_killed_min_size_connections(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(min_size=2, recycle=None, reaper_interval=0.1)
    assert len(pool) == 2
    # Take both out only to learn who they are, then put them back and kill them.
    first, second = await pool.acquire(), await pool.acquire()
    killed = {first.thread_id(), second.thread_id()}
    assert pool.stats().opened == 2  # those were the min_size ones
    await pool.release(first)
    await pool.release(second)
    await admin.kill(first)
    await admin.kill(second)

    await until(lambda: pool.stats().discarded == 2 and len(pool) == 2, "dead ones replaced")
    stats = pool.stats()
    assert (stats.opened, stats.acquires, stats.recycled) == (4, 2, 0)
    pool.check_invariants()

    first, second = await pool.acquire(), await pool.acquire()
    try:
        assert not killed & {first.thread_id(), second.thread_id()}
        assert await scalar(first, "SELECT 1") == await scalar(second, "SELECT 1") == 1
    finally:
        await pool.release(first)
        await pool.release(second)


async def test_reaper_keeps_min_size_open_across_recycles(make_pool: PoolFactory) -> None:
    pool = await make_pool(min_size=2, recycle=RECYCLE, reaper_interval=INTERVAL)
    await until(
        lambda: pool.stats().recycled >= 2 and pool.stats().opened >= 4 and len(pool) == 2,
        "min_size recycled and reopened",
    )
    stats = pool.stats()
    assert (stats.acquires, stats.discarded) == (0, 0)
    pool.check_invariants()


# -- a failing pass ---------------------------------------------------------------


async def test_reaper_survives_a_failed_pass(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mysqlpool")
    calls = 0

    async def init(conn: Any) -> None:
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            raise RuntimeError(f"init refused connection #{calls}")

    pool = await make_pool(min_size=1, recycle=RECYCLE, reaper_interval=INTERVAL, init=init)
    assert (len(pool), calls) == (1, 1)

    # The first connection ages out; the next two opens fail; the fourth sticks.
    await until(lambda: calls >= 4 and len(pool) == 1, "refilled after two failures")
    stats = pool.stats()
    assert stats.recycled >= 1
    assert stats.opened == 2  # the failed ones never counted as open
    pool.check_invariants()
    failures = [
        r for r in caplog.records if r.name == "mysqlpool" and "init refused" in r.getMessage()
    ]
    assert len(failures) == 2, [r.getMessage() for r in caplog.records]

    assert len(pool_tasks(pool, "reaper")) == 1  # still running
    async with pool.acquire() as conn:  # the pool was never broken
        assert await scalar(conn, "SELECT 1") == 1


# -- the reaper ends with the pool --------------------------------------------------


async def test_reaper_ends_with_the_pool(make_pool: PoolFactory) -> None:
    pool = await make_pool(recycle=RECYCLE, reaper_interval=INTERVAL)
    async with pool.acquire():
        pass
    [reaper] = pool_tasks(pool, "reaper")
    await pool.close()
    assert reaper.done()
    assert pool_tasks(pool) == []
    assert pool.stats().open == 0


async def test_close_stops_a_reaper_that_is_opening_a_connection(
    make_pool: PoolFactory,
) -> None:
    opening = asyncio.Event()
    calls = 0

    async def init(conn: Any) -> None:
        nonlocal calls
        calls += 1
        if calls >= 2:  # the reaper's refill: hang until close() cancels it
            opening.set()
            await asyncio.Event().wait()

    pool = await make_pool(min_size=1, recycle=RECYCLE, reaper_interval=INTERVAL, init=init)
    await asyncio.wait_for(opening.wait(), 2)  # min_size recycled, refill under way
    assert pool.stats().opening == 1
    [reaper] = pool_tasks(pool, "reaper")

    await asyncio.wait_for(pool.close(), 2)
    assert reaper.done()
    stats = pool.stats()
    assert (stats.open, stats.opening, stats.in_use) == (0, 0, 0)
    pool.check_invariants()


# -- backoff while the server is away ---------------------------------------------


@pytest.mark.parametrize("failures", [1, 2, 3, 6, 20])
def test_refill_backoff_doubles_with_jitter_up_to_a_cap(failures: int) -> None:
    base = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_CAP)
    delays = [backoff_delay(failures) for _ in range(200)]
    assert all(0.5 * base <= d <= 1.5 * base for d in delays)
    assert len(set(delays)) > 1  # jittered, so processes don't retry in step


@pytest.mark.slow
async def test_reaper_backs_off_while_connections_keep_failing(mysql_dsn: str) -> None:
    attempts = 0

    async def server_away(conn: Any) -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionRefusedError("server away")

    pool = Pool(mysql_dsn, min_size=1, reaper_interval=0.02, init=server_away)
    try:
        with pytest.raises(ConnectionRefusedError):
            await pool.open()
        # 1.2 s of reaper passes every 0.02 s: ~60 retries without backoff;
        # with it, the waits are ~0.5, ~1, ~2 s (x0.5..1.5), so at most 4.
        await asyncio.sleep(1.2)
        assert 2 <= attempts <= 5
        assert pool.stats().open == 0
        pool.check_invariants()
    finally:
        await pool.close()
