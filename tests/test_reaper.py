"""The reaper: between uses it closes idle connections that are past recycle or
max_lifetime or dead, reopens up to ``min_size``, survives a failed pass, never
touches a checked-out connection, and ends with the pool.

No test here calls ``acquire()`` to make the reaper act. Its time is a
:class:`~mysqlpool.testing.ManualClock`: a test advances the clock pass by
pass (``clocks.advance``), waiting after each step until the reaper has
finished its pass and sleeps again, then reads the pool's own state. Only
its I/O (opening connections) and the server's side (a KILL landing, a
session ending) take real time, and are waited for by polling.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import pytest

import drivers
from clocks import advance
from conftest import Admin, PoolFactory, scalar
from mysqlpool import Pool
from mysqlpool._backoff import BACKOFF_CAP, BACKOFF_FIRST, backoff_delay
from mysqlpool.testing import ManualClock
from polling import pool_tasks, until

SEAM = drivers.seam()

RECYCLE = 60.0  # clock seconds
INTERVAL = 5.0  # reaper_interval: several passes per RECYCLE


# -- helpers --------------------------------------------------------------------




async def gone(admin: Admin, thread_id: int) -> bool:
    """True once the server has no session with this thread id."""
    return not await admin.is_alive(thread_id)


# -- recycling between uses -------------------------------------------------------


async def test_reaper_recycles_an_idle_connection_with_no_acquire(
    make_pool: PoolFactory, admin: Admin
) -> None:
    clock = ManualClock()
    pool = await make_pool(recycle=RECYCLE, reaper_interval=INTERVAL, clock=clock)
    async with pool.acquire() as conn:
        thread = conn.thread_id()
    assert len(pool) == 1

    passes = await advance(clock, RECYCLE - INTERVAL, step=INTERVAL)
    assert len(passes) == 11  # the reaper came by every 5 s: still young
    assert (len(pool), pool.stats().recycled) == (1, 0)
    assert await advance(clock, INTERVAL, step=INTERVAL) == [RECYCLE]  # its pass at recycle
    assert (len(pool), pool.stats().recycled) == (0, 1)
    stats = pool.stats()
    assert (stats.open, stats.discarded, stats.acquires) == (0, 0, 1)
    pool.check_invariants()
    await until(lambda: gone(admin, thread), f"server thread {thread} gone")


async def test_reaper_interval_defaults_from_recycle(make_pool: PoolFactory) -> None:
    # recycle=60 and no reaper_interval: the reaper must come by every quarter
    # of recycle (15 s), not once a minute. The clock moves a second at a time
    # and the passes are read off it.
    clock = ManualClock()
    pool = await make_pool(recycle=RECYCLE, clock=clock)
    assert pool.options.reaper_interval is None
    assert await advance(clock, 5, step=1) == []  # no pass yet: the first is due at 15
    async with pool.acquire():  # stamped at 5: past recycle at 65
        pass
    passes = await advance(clock, 59, step=1)  # to 64
    assert passes == [15, 30, 45, 60]
    assert (len(pool), pool.stats().recycled) == (1, 0)
    passes = await advance(clock, 11, step=1)  # to 75
    assert passes == [75]  # the first pass past recycle: at most a quarter of it late
    assert (len(pool), pool.stats().recycled) == (0, 1)


async def test_reaper_period_follows_a_recycle_learnt_from_the_server(
    make_pool: PoolFactory,
) -> None:
    # recycle="auto" is only known once the first connection has read the
    # server's wait_timeout; the reaper, asleep for a minute by then, must
    # come by every quarter of the recycle learnt (10 s gives 9 s: 2.25 s).
    clock = ManualClock()
    pool = await make_pool(init_command="SET SESSION wait_timeout=10", clock=clock)
    async with pool.acquire():  # opened and stamped at 0: past recycle at 9
        pass
    assert pool.recycle == 9.0
    passes = await advance(clock, 15, step=0.25)
    assert passes == [2.25, 4.5, 6.75, 9.0, 11.25, 13.5]
    assert (len(pool), pool.stats().recycled) == (0, 1)


async def test_reaper_recycles_idle_connections_past_max_lifetime(
    make_pool: PoolFactory,
) -> None:
    clock = ManualClock()
    pool = await make_pool(
        recycle=None, max_lifetime=RECYCLE, reaper_interval=INTERVAL, clock=clock
    )
    async with pool.acquire():  # opened at 0
        pass
    assert len(await advance(clock, RECYCLE - INTERVAL, step=INTERVAL)) == 11
    assert (len(pool), pool.stats().recycled) == (1, 0)
    assert await advance(clock, INTERVAL, step=INTERVAL) == [RECYCLE]
    assert (len(pool), pool.stats().recycled) == (0, 1)
    assert pool.stats().discarded == 0


async def test_reaper_never_touches_a_checked_out_connection(
    make_pool: PoolFactory, admin: Admin
) -> None:
    clock = ManualClock()
    pool = await make_pool(recycle=RECYCLE, reaper_interval=INTERVAL, clock=clock)
    held = await pool.acquire()
    held_thread = held.thread_id()
    # A witness, idle while `held` is out and aged just as much: once the
    # reaper has taken it, the reaper has seen `held` past recycle too.
    async with pool.acquire():
        pass
    await advance(clock, RECYCLE, step=INTERVAL)
    assert (pool.stats().recycled, len(pool)) == (1, 0)  # witness reaped
    assert len(await advance(clock, 4 * INTERVAL, step=INTERVAL)) == 4  # a few more passes

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
    clock = ManualClock()
    pool = await make_pool(min_size=2, recycle=None, reaper_interval=INTERVAL, clock=clock)
    assert len(pool) == 2
    # Take both out only to learn who they are, then put them back and kill them.
    first, second = await pool.acquire(), await pool.acquire()
    killed = {first.thread_id(), second.thread_id()}
    assert pool.stats().opened == 2  # those were the min_size ones
    await pool.release(first)
    await pool.release(second)
    await admin.kill(first)
    await admin.kill(second)
    # The server's side, in real time: the KILLs reach the client sockets.
    await until(lambda: SEAM.is_dead(first) and SEAM.is_dead(second), "EOF seen")
    assert pool.stats().discarded == 0  # nobody looked yet

    assert await advance(clock, INTERVAL, step=INTERVAL) == [INTERVAL]  # one pass does it all
    assert (pool.stats().discarded, len(pool)) == (2, 2)
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
    clock = ManualClock()
    pool = await make_pool(min_size=2, recycle=RECYCLE, reaper_interval=INTERVAL, clock=clock)
    await advance(clock, RECYCLE - INTERVAL, step=INTERVAL)
    stats = pool.stats()
    assert (stats.recycled, stats.opened, len(pool)) == (0, 2, 2)
    for generation in (1, 2):
        # The pass at recycle closes both and opens two new ones, in the same pass.
        await advance(clock, INTERVAL, step=INTERVAL)
        stats = pool.stats()
        assert (stats.recycled, stats.opened, len(pool)) == (2 * generation, 2 + 2 * generation, 2)
        pool.check_invariants()
        await advance(clock, RECYCLE - INTERVAL, step=INTERVAL)
        assert pool.stats().recycled == 2 * generation  # the new ones are young
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

    clock = ManualClock()
    pool = await make_pool(
        min_size=1, recycle=RECYCLE, reaper_interval=INTERVAL, init=init, clock=clock
    )
    assert (len(pool), calls) == (1, 1)

    # The first connection ages out at 60 and that pass's open fails; so does
    # the next pass's (the refill's backoff, 0.25-0.75 then 0.5-1.5 s, is
    # shorter than a pass); the third sticks.
    await advance(clock, RECYCLE, step=INTERVAL)
    assert (len(pool), calls, pool.stats().recycled) == (0, 2, 1)
    await advance(clock, INTERVAL, step=INTERVAL)
    assert (len(pool), calls) == (0, 3)
    await advance(clock, INTERVAL, step=INTERVAL)
    assert (len(pool), calls) == (1, 4)  # refilled after two failures
    stats = pool.stats()
    assert stats.recycled == 1
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
    clock = ManualClock()
    pool = await make_pool(recycle=RECYCLE, reaper_interval=INTERVAL, clock=clock)
    async with pool.acquire():
        pass
    assert len(await advance(clock, 2 * INTERVAL, step=INTERVAL)) == 2  # it is running
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

    clock = ManualClock()
    pool = await make_pool(
        min_size=1, recycle=RECYCLE, reaper_interval=INTERVAL, init=init, clock=clock
    )
    await advance(clock, RECYCLE - INTERVAL, step=INTERVAL)
    assert not opening.is_set()
    clock.advance(INTERVAL)  # the pass at recycle: min_size recycled, refill under way
    await until(opening.is_set, "the reaper's refill opening")
    assert pool.stats().opening == 1
    assert clock.pending == 0  # the reaper is in its pass, not asleep
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


async def test_reaper_backs_off_while_connections_keep_failing(mysql_dsn: str) -> None:
    clock = ManualClock()
    interval = 0.02
    attempts: list[float] = []  # clock times of the connects that reached init

    async def server_away(conn: Any) -> None:
        attempts.append(clock.now())
        raise ConnectionRefusedError("server away")

    pool = Pool(mysql_dsn, min_size=1, reaper_interval=interval, init=server_away, clock=clock)
    try:
        with pytest.raises(ConnectionRefusedError):
            await pool.open()
        assert attempts == [0.0]
        # 1.2 s of reaper passes every 0.02 s: 60 retries without backoff;
        # with it, the waits are ~0.5, ~1, ~2 s (x0.5..1.5), so 3 or 4 attempts.
        passes = await advance(clock, 1.2, step=interval)
        assert len(passes) == 60  # the reaper made every pass
        assert 3 <= len(attempts) <= 4, attempts
        # Then on to 20 s: the waits keep doubling.
        passes += await advance(clock, 18.8, step=interval)
        assert len(passes) == 1000
        assert pool.stats().open == 0
        pool.check_invariants()
    finally:
        await pool.close()
    # Its first pass retries at once (the open's failure is not the reaper's);
    # after the n-th failed refill the next waits backoff_delay(n): 0.5 * 2**(n-1)
    # s, x0.5..1.5, rounded up to the next pass.
    assert attempts[1] == pytest.approx(interval)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts[1:])]
    assert len(gaps) >= 4, attempts
    for failures, gap in enumerate(gaps, start=1):
        base = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_CAP)
        assert 0.5 * base - 1e-9 <= gap <= 1.5 * base + interval + 1e-9, (failures, attempts)
