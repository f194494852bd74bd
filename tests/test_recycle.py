"""Recycle, max_lifetime, recycle="auto" and pre_ping, against a real server.

Every connection carries an activity stamp (set at open and at each
checkout); one whose stamp is ``recycle`` seconds old is closed instead of
reused, at checkout and at return (the reaper's share is in
``test_reaper.py``). ``max_lifetime`` counts from open, whatever the use. A
connection the server already dropped is never handed out, whatever
``pre_ping`` says; ``pre_ping`` only pings connections idle past its
threshold.

The ages here are clock time: each test that ages a connection gives its
pool a :class:`~mysqlpool.testing.ManualClock` and advances it, so the
thresholds are realistic (a minute) and crossed exactly, without sleeping.
Only the tests about the server's own ``wait_timeout`` (its real clock, not
the pool's) wait for wall time to pass.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import drivers
from clocks import advance
from conftest import Admin, PoolFactory, scalar
from mysqlpool._aging import auto_recycle
from mysqlpool.testing import ManualClock
from polling import until

SEAM = drivers.seam()

RECYCLE = 60.0  # clock seconds
REAPER_OFF = 3600.0  # reaper_interval that keeps the reaper out of a test (never advanced that far)


# -- helpers --------------------------------------------------------------------




async def gone(admin: Admin, thread_id: int) -> bool:
    """True once the server has no session with this thread id."""
    return not await admin.is_alive(thread_id)


async def admin_commands(conn: Any) -> int:
    """This session's ``Com_admin_commands``: COM_PING (and friends) it has received.

    A per-session counter, so other tests running against the same server
    can't move it; ``SHOW SESSION STATUS`` itself counts as Com_show_status.
    """
    async with conn.cursor() as cur:
        await cur.execute("SHOW SESSION STATUS LIKE 'Com_admin_commands'")
        row = await cur.fetchone()
    assert row is not None
    return int(row[1])


# -- recycle at checkout and at return ------------------------------------------


async def test_recycle_at_checkout_replaces_an_aged_idle_connection(
    make_pool: PoolFactory, admin: Admin
) -> None:
    clock = ManualClock()
    pool = await make_pool(recycle=RECYCLE, reaper_interval=REAPER_OFF, clock=clock)
    async with pool.acquire() as conn:
        old_thread = conn.thread_id()
    clock.advance(RECYCLE - 1)
    async with pool.acquire() as conn:  # reused a second short of recycle: still young
        assert conn.thread_id() == old_thread
    assert pool.stats().recycled == 0

    clock.advance(RECYCLE)  # idle for exactly `recycle` since that checkout
    assert len(pool) == 1  # nobody touched it in the meantime: the reaper is off

    async with pool.acquire() as conn:
        assert conn.thread_id() != old_thread
        assert await scalar(conn, "SELECT 1") == 1
        pool.check_invariants()
    stats = pool.stats()
    assert (stats.recycled, stats.discarded, stats.opened, stats.open) == (1, 0, 2, 1)
    await until(lambda: gone(admin, old_thread), f"server thread {old_thread} gone")


async def test_recycle_at_return_closes_a_connection_held_past_recycle(
    make_pool: PoolFactory, admin: Admin
) -> None:
    clock = ManualClock()
    pool = await make_pool(recycle=RECYCLE, reaper_interval=REAPER_OFF, clock=clock)
    conn = await pool.acquire()
    thread = conn.thread_id()
    clock.advance(RECYCLE + 1)  # hold it past recycle
    # Its holder may keep using it: recycle never pulls a connection from under it.
    assert await scalar(conn, "SELECT 1") == 1
    assert pool.stats().recycled == 0

    await pool.release(conn)
    stats = pool.stats()
    assert (stats.recycled, stats.discarded, stats.idle, stats.open) == (1, 0, 0, 0)
    assert drivers.is_closed(conn)
    pool.check_invariants()
    await until(lambda: gone(admin, thread), f"server thread {thread} gone")


async def test_a_connection_returned_within_recycle_is_kept(make_pool: PoolFactory) -> None:
    clock = ManualClock()
    pool = await make_pool(recycle=RECYCLE, reaper_interval=REAPER_OFF, clock=clock)
    async with pool.acquire() as conn:
        thread = conn.thread_id()
        assert await scalar(conn, "SELECT 1") == 1
        clock.advance(RECYCLE - 1)  # held for almost recycle, returned in time
    stats = pool.stats()
    assert (stats.recycled, stats.idle) == (0, 1)
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread


async def test_each_checkout_restarts_the_recycle_clock(make_pool: PoolFactory) -> None:
    # Idle for 55 s between uses, it outlives recycle=60 counted from open:
    # recycle is about idleness (the server's wait_timeout), not age. The
    # reaper runs every 5 s and must agree: it makes its passes (one of them
    # 55 s after the last checkout) and leaves the connection alone.
    clock = ManualClock()
    interval = 5.0
    pool = await make_pool(recycle=RECYCLE, reaper_interval=interval, clock=clock)
    async with pool.acquire() as conn:
        thread = conn.thread_id()
    passes = 0
    for _ in range(3):
        # Idle, but a reaper interval short of recycle.
        passes += len(await advance(clock, RECYCLE - interval, step=interval))
        assert len(pool) == 1
        async with pool.acquire() as conn:
            assert conn.thread_id() == thread
            assert await scalar(conn, "SELECT 1") == 1
    assert clock.now() == 3 * (RECYCLE - interval) > RECYCLE
    assert passes == 3 * (RECYCLE - interval) / interval  # the reaper looked every time
    stats = pool.stats()
    assert (stats.recycled, stats.opened) == (0, 1)


# -- max_lifetime ---------------------------------------------------------------


async def test_max_lifetime_retires_a_constantly_used_connection(
    make_pool: PoolFactory,
) -> None:
    lifetime = 60.0
    clock = ManualClock()
    pool = await make_pool(
        recycle=None, max_lifetime=lifetime, reaper_interval=REAPER_OFF, clock=clock
    )
    first_thread: int | None = None
    uses = 0
    while True:  # used every clock second: checkout stamps would keep `recycle` from firing
        async with pool.acquire() as conn:
            thread = conn.thread_id()
            assert await scalar(conn, "SELECT 1") == 1
        if first_thread is None:
            first_thread = thread
        if thread != first_thread:
            break
        uses += 1
        assert clock.now() < 2 * lifetime, "the connection outlived max_lifetime"
        clock.advance(1)
    # Opened at 0, used at 0, 1, ... 59: retired at its first checkout at max_lifetime.
    assert clock.now() == lifetime
    assert uses == lifetime  # it really was busy the whole time
    stats = pool.stats()
    assert (stats.recycled, stats.discarded, stats.opened) == (1, 0, 2)
    pool.check_invariants()


# -- recycle="auto" -------------------------------------------------------------


@pytest.mark.parametrize("wait_timeout", [1, 2, 10, 60, 600, 3600, 28800, 31536000])
def test_auto_recycle_stays_below_wait_timeout(wait_timeout: int) -> None:
    recycle = auto_recycle(wait_timeout)
    assert wait_timeout / 2 <= recycle < wait_timeout
    margin = wait_timeout - recycle
    assert min(1.0, wait_timeout / 2) <= margin <= 300  # at least 1 s, at most 5 min


async def test_recycle_auto_reads_the_session_wait_timeout(make_pool: PoolFactory) -> None:
    pool = await make_pool(init_command="SET SESSION wait_timeout=10")
    assert pool.recycle is None  # not known before a connection reports
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT @@SESSION.wait_timeout") == 10
    assert pool.recycle is not None
    assert pool.recycle == auto_recycle(10)
    assert pool.recycle < 10


async def test_recycle_auto_with_the_server_default(make_pool: PoolFactory, admin: Admin) -> None:
    pool = await make_pool()
    async with pool.acquire() as conn:
        server_timeout = float(await scalar(conn, "SELECT @@SESSION.wait_timeout"))
    assert server_timeout == float(await admin.scalar("SELECT @@GLOBAL.wait_timeout"))
    assert pool.recycle is not None
    assert pool.recycle == auto_recycle(server_timeout)
    assert pool.recycle < server_timeout


async def test_recycle_auto_retires_a_connection_before_the_server_times_it_out(
    make_pool: PoolFactory, admin: Admin
) -> None:
    # wait_timeout=1 gives recycle 0.5: the pool must drop it first, on its own terms.
    # Real wall time, on purpose: the race is against the server's own clock
    # (its wait_timeout), which a ManualClock can't move.
    pool = await make_pool(init_command="SET SESSION wait_timeout=1", reaper_interval=REAPER_OFF)
    async with pool.acquire() as conn:
        old_thread = conn.thread_id()
    assert pool.recycle == auto_recycle(1) == 0.5
    await asyncio.sleep(0.6)  # wall time: past recycle, not yet past wait_timeout
    async with pool.acquire() as conn:
        assert conn.thread_id() != old_thread
        assert await scalar(conn, "SELECT 1") == 1
    stats = pool.stats()
    # Recycled (aged out, closed with COM_QUIT), not discarded as found dead.
    assert (stats.recycled, stats.discarded) == (1, 0)
    await until(lambda: gone(admin, old_thread), f"server thread {old_thread} gone")


# -- connections the server already dropped --------------------------------------


@pytest.mark.slow
async def test_a_connection_the_server_timed_out_is_replaced_silently(
    make_pool: PoolFactory, admin: Admin
) -> None:
    # Real wall time, on purpose: it is the server's wait_timeout that ends the
    # session, on the server's clock; the pool's own timing (recycle, the
    # reaper) is switched off.
    pool = await make_pool(
        init_command="SET SESSION wait_timeout=1",
        pre_ping=False,
        recycle=None,
        reaper_interval=REAPER_OFF,
    )
    async with pool.acquire() as stale:
        old_thread = stale.thread_id()
    await until(lambda: gone(admin, old_thread), "timed out by the server")
    await until(lambda: SEAM.is_dead(stale), "seen closed on the client side")
    assert len(pool) == 1  # still queued: nothing looked at it yet

    async with pool.acquire() as conn:  # no error reaches the caller
        assert conn is not stale
        assert conn.thread_id() != old_thread
        assert await scalar(conn, "SELECT 1") == 1
    stats = pool.stats()
    assert (stats.discarded, stats.recycled, stats.opened, stats.open) == (1, 0, 2, 1)
    pool.check_invariants()


async def test_a_killed_idle_connection_is_never_handed_out_even_without_pre_ping(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(pre_ping=False, recycle=None, reaper_interval=REAPER_OFF)
    async with pool.acquire() as victim:
        old_thread = victim.thread_id()
    await admin.kill(victim)
    await until(lambda: SEAM.is_dead(victim), "seen closed on the client side")

    async with pool.acquire() as conn:
        assert conn.thread_id() != old_thread
        assert await scalar(conn, "SELECT 1") == 1
    stats = pool.stats()
    assert (stats.discarded, stats.recycled, stats.opened) == (1, 0, 2)
    pool.check_invariants()


async def test_pre_ping_replaces_a_connection_killed_a_moment_ago(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(pre_ping=0, recycle=None, reaper_interval=REAPER_OFF)
    async with pool.acquire() as victim:
        old_thread = victim.thread_id()
    await admin.kill(victim)
    # At once: the EOF may not have been read yet, so either the socket check
    # or the ping catches it; the caller must not see the difference.
    async with pool.acquire() as conn:
        assert conn.thread_id() != old_thread
        assert await scalar(conn, "SELECT 1") == 1
    stats = pool.stats()
    assert (stats.discarded, stats.recycled, stats.opened, stats.acquires) == (1, 0, 2, 2)
    pool.check_invariants()


# -- what pre_ping costs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("pre_ping", "idle_for", "pings"),
    [
        pytest.param(True, 0.0, 0, id="default-threshold-hot"),
        pytest.param(True, 0.9, 0, id="default-threshold-warm"),
        pytest.param(True, 1.0, 1, id="default-threshold-idle"),
        pytest.param(0, 0.0, 1, id="always"),
        pytest.param(30, 0.0, 0, id="threshold-hot"),
        pytest.param(30, 29.0, 0, id="threshold-warm"),
        pytest.param(30, 30.0, 1, id="threshold-idle"),
        pytest.param(False, 600.0, 0, id="off"),
    ],
)
async def test_pre_ping_pings_only_connections_idle_past_its_threshold(
    make_pool: PoolFactory, pre_ping: bool | float, idle_for: float, pings: int
) -> None:
    clock = ManualClock()
    pool = await make_pool(pre_ping=pre_ping, recycle=None, reaper_interval=REAPER_OFF, clock=clock)
    async with pool.acquire() as conn:
        thread = conn.thread_id()
        before = await admin_commands(conn)
    clock.advance(idle_for)  # idle this long on the pool's clock
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread
        assert await admin_commands(conn) - before == pings
