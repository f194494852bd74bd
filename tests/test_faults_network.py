"""The pool under network faults, made by a real proxy between it and the server.

Guarantee 1 of the reliability issue: ``acquire(timeout=t)`` never returns
later than ``t`` plus a small margin, whatever the network does: refused,
blackholed before or after the handshake, slow. And the parts of guarantees 2
and 4 a proxy can show: a failed connect frees its slot, connections reset
under the pool (idle or mid-query) or stalled mid-reply are discarded, never
reused, and the pool serves again without any call from the user.

Timed bounds are asserted only where the guarantee is about time; everything
else waits on the pool's or the proxy's own state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

import drivers
from conftest import Admin, Figure, scalar
from faultproxy import FaultProxy
from mysqlpool import Pool, PoolTimeout, parse_dsn
from mysqlpool.testing import ManualClock
from polling import until

ERR = drivers.errors()  # the run's driver's error classes
SEAM = drivers.seam()

PoolFactory = Callable[..., Awaitable[Pool]]

# How late acquire() may return past its timeout on this (noisy, shared) machine.
MARGIN = 0.5
# The driver's "can't connect" and "lost connection" codes.
CR_CONN_HOST_ERROR = 2003
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013
# An acquire still running this long past its timeout is hung: stop waiting for it.
HANG = 5.0


@pytest_asyncio.fixture
async def proxy(mysql_dsn: str) -> AsyncIterator[FaultProxy]:
    params = parse_dsn(mysql_dsn)
    async with FaultProxy(params.host, params.port) as fault_proxy:
        yield fault_proxy


@pytest_asyncio.fixture
async def proxied_pool(
    make_pool: PoolFactory, proxy: FaultProxy, mysql_dsn: str
) -> Callable[..., Awaitable[Pool]]:
    """``await proxied_pool(**options)``: a pool whose every connection goes through ``proxy``.

    The proxy is set up after ``make_pool``, so it is closed first: a pool
    still talking to it at teardown sees its sockets close, not hang.
    """

    async def factory(**options: Any) -> Pool:
        return await make_pool(proxy.dsn(mysql_dsn), **options)

    return factory


async def timed_failure(pool: Pool, timeout: float) -> tuple[BaseException, float]:
    """Run ``acquire(timeout)``, which must fail; return its error and how long it took.

    A pool that ignored its deadline fails here with the outer TimeoutError
    instead of hanging the run.
    """
    began = time.monotonic()
    with pytest.raises((PoolTimeout, ERR.OperationalError)) as failure:
        await asyncio.wait_for(pool.acquire(timeout=timeout), timeout + HANG)
    return failure.value, time.monotonic() - began


def assert_empty(pool: Pool) -> None:
    """Nothing open, nothing opening, nobody waiting, bookkeeping consistent."""
    stats = pool.stats()
    assert (stats.open, stats.opening, stats.waiting) == (0, 0, 0), stats
    pool.check_invariants()


async def idle_connections(pool: Pool, count: int) -> list[Any]:
    """Open ``count`` connections and return them all to the pool, idle."""
    conns = [await pool.acquire() for _ in range(count)]
    for conn in conns:
        await pool.release(conn)
    assert len(pool) == count
    return conns


# ----------------------------------------- guarantee 1: acquire's deadline


async def test_refused_connect_fails_at_once_with_the_drivers_error(
    proxied_pool: PoolFactory, proxy: FaultProxy, figure: Figure
) -> None:
    pool = await proxied_pool(pool_size=1)
    proxy.refuse()
    error, elapsed = await timed_failure(pool, timeout=0.5)
    figure("acquire(timeout=0.5) ended after (s)", f"{elapsed:.3f}")
    assert isinstance(error, ERR.OperationalError)
    assert error.args[0] == CR_CONN_HOST_ERROR
    assert elapsed <= 0.5 + MARGIN
    assert_empty(pool)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda proxy: proxy.blackhole(), id="blackholed-handshake"),
        pytest.param(lambda proxy: proxy.latency(1.0), id="slow-handshake"),
    ],
)
async def test_connect_that_hangs_is_cut_at_the_deadline(
    proxied_pool: PoolFactory,
    proxy: FaultProxy,
    fault: Callable[[FaultProxy], None],
    figure: Figure,
) -> None:
    pool = await proxied_pool(pool_size=1)
    fault(proxy)
    error, elapsed = await timed_failure(pool, timeout=0.5)
    figure("acquire(timeout=0.5) ended after (s)", f"{elapsed:.3f}")
    assert isinstance(error, PoolTimeout)
    assert 0.5 - 0.05 <= elapsed <= 0.5 + MARGIN, elapsed
    assert proxy.accepted == 1
    assert_empty(pool)
    # The half-open socket was closed, not left behind.
    await until(lambda: proxy.open == 0, "the pool closed the hung connection")


async def test_ping_into_a_blackhole_is_cut_at_the_deadline_and_discarded(
    proxied_pool: PoolFactory, proxy: FaultProxy
) -> None:
    pool = await proxied_pool(pool_size=1, pre_ping=0)
    (pinged,) = await idle_connections(pool, 1)
    proxy.blackhole()
    error, elapsed = await timed_failure(pool, timeout=0.5)
    assert isinstance(error, PoolTimeout)
    assert 0.5 - 0.05 <= elapsed <= 0.5 + MARGIN, elapsed
    assert drivers.is_closed(pinged)  # discarded, not left open nor put back
    assert pool.stats().discarded == 1
    assert_empty(pool)


async def test_a_connection_handed_straight_to_a_waiter_is_not_pinged(
    proxied_pool: PoolFactory, proxy: FaultProxy
) -> None:
    # pre_ping pings a connection that sat idle past its threshold; one that
    # goes from its holder to the next was in use until then, however long
    # ago it was last idle.
    clock = ManualClock()
    pool = await proxied_pool(pool_size=1, max_overflow=0, pre_ping=5, clock=clock)
    held = await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire(timeout=None))
    await until(lambda: pool.stats().waiting == 1, "the acquire waits for the held connection")
    clock.advance(10)
    proxy.blackhole()  # a ping would never be answered
    await pool.release(held)
    assert await asyncio.wait_for(waiter, HANG) is held
    await pool.release(held)
    assert pool.stats().discarded == 0


@pytest.mark.slow
async def test_waiting_and_pinging_share_one_deadline(
    proxied_pool: PoolFactory, proxy: FaultProxy
) -> None:
    pool = await proxied_pool(pool_size=1, max_overflow=0, pre_ping=0)
    held = await pool.acquire()
    proxy.blackhole()  # the connection the waiter will get can't answer its ping
    began = time.monotonic()
    waiter = asyncio.ensure_future(asyncio.wait_for(pool.acquire(timeout=1.0), 1.0 + HANG))
    await until(lambda: pool.stats().waiting == 1, "the acquire waits for the held connection")
    await asyncio.sleep(0.8)  # the guarantee is about time: 0.8 s of the 1 s spent waiting
    await pool.release(held)
    with pytest.raises(PoolTimeout):
        await waiter
    elapsed = time.monotonic() - began
    # A fresh 1 s for the ping would end at 1.8 s.
    assert 1.0 - 0.05 <= elapsed <= 1.0 + MARGIN, elapsed
    assert drivers.is_closed(held)
    assert_empty(pool)


@pytest.mark.slow
@pytest.mark.parametrize("cut_by", ["pre-ping", "holder"])
async def test_close_after_a_reply_cut_in_a_blackhole_keeps_its_timeout(
    proxied_pool: PoolFactory, proxy: FaultProxy, cut_by: str
) -> None:
    """close(timeout) returns in time although the server can't be reached.

    Cutting a reply short makes the pool KILL QUERY over a side connection;
    that connection hangs in the blackhole too, and must not hold close().
    A pre-ping is the pool's own command, not a user statement: nothing to kill.
    """
    pool = await proxied_pool(pool_size=1, pre_ping=0 if cut_by == "pre-ping" else False)
    await idle_connections(pool, 1)
    proxy.blackhole()
    if cut_by == "pre-ping":
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.3)
    else:
        with pytest.raises(asyncio.TimeoutError) as timed_out:
            async with pool.acquire(timeout=0.3) as conn:
                await asyncio.wait_for(scalar(conn, "SELECT 1"), 0.3)
        assert not isinstance(timed_out.value, PoolTimeout)  # the holder's own timeout
    assert_empty(pool)
    began = time.monotonic()
    await pool.close(timeout=0.2)
    elapsed = time.monotonic() - began
    assert elapsed <= 0.2 + MARGIN, f"close(timeout=0.2) took {elapsed:.2f} s"
    if cut_by == "pre-ping":
        assert proxy.accepted == 1, "a side connection was opened for the pool's own ping"


# --------------------------------------- guarantee 2: a failed connect frees its slot


async def test_failed_connects_free_their_slots_and_service_resumes_by_itself(
    proxied_pool: PoolFactory, proxy: FaultProxy
) -> None:
    pool = await proxied_pool(pool_size=2, max_overflow=0)
    proxy.refuse()
    began = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(pool.acquire(timeout=1.0) for _ in range(10)), return_exceptions=True),
        1.0 + HANG,
    )
    elapsed = time.monotonic() - began
    assert elapsed <= 1.0 + MARGIN
    for result in results:
        assert isinstance(result, (PoolTimeout, ERR.OperationalError)), result
        if isinstance(result, ERR.OperationalError):
            assert result.args[0] == CR_CONN_HOST_ERROR
    assert_empty(pool)

    await proxy.pass_through()
    async with pool.acquire(timeout=1.0) as conn:
        assert await scalar(conn, "SELECT 1") == 1
    pool.check_invariants()


# ------------------------- guarantee 4 (what a proxy shows): dead sockets are discarded


async def test_idle_connections_reset_by_the_network_are_replaced(
    proxied_pool: PoolFactory, proxy: FaultProxy
) -> None:
    pool = await proxied_pool(pool_size=2)
    conns = await idle_connections(pool, 2)
    old_threads = {conn.thread_id() for conn in conns}
    proxy.reset_all()
    await until(lambda: all(SEAM.is_dead(conn) for conn in conns), "the RSTs arrived")
    async with pool.acquire(timeout=1.0) as conn:
        assert await scalar(conn, "SELECT CONNECTION_ID()") not in old_threads
    assert pool.stats().discarded == 2
    pool.check_invariants()


async def test_reset_seen_by_the_pre_ping_is_retried_on_a_fresh_connection(
    proxied_pool: PoolFactory, proxy: FaultProxy
) -> None:
    pool = await proxied_pool(pool_size=1, pre_ping=0)
    (old,) = await idle_connections(pool, 1)
    old_thread = old.thread_id()
    proxy.reset_all()  # no wait: the ping itself is the first to meet the RST
    async with pool.acquire(timeout=1.0) as conn:
        assert await scalar(conn, "SELECT CONNECTION_ID()") != old_thread
    assert pool.stats().discarded == 1
    pool.check_invariants()


async def test_reset_mid_query_fails_the_query_and_discards_the_connection(
    proxied_pool: PoolFactory, proxy: FaultProxy, admin: Admin
) -> None:
    pool = await proxied_pool(pool_size=1)
    conn = await pool.acquire()
    thread = conn.thread_id()

    async def sleeper() -> None:
        try:
            await scalar(conn, "SELECT SLEEP(1)")
        finally:
            await pool.release(conn)

    task = asyncio.ensure_future(sleeper())
    await until(
        lambda: admin.scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE ID = %s AND INFO LIKE 'SELECT SLEEP%%'",
            thread,
        ),
        "the query is running on the server",
    )
    proxy.reset_all()
    with pytest.raises(ERR.OperationalError) as failure:
        await task
    assert failure.value.args[0] in (CR_SERVER_LOST, CR_SERVER_GONE)
    assert pool.stats().discarded == 1
    assert_empty(pool)
    async with pool.acquire(timeout=1.0) as fresh:
        assert await scalar(fresh, "SELECT CONNECTION_ID()") != thread


async def test_reply_stalled_mid_packet_discards_the_connection(
    proxied_pool: PoolFactory, proxy: FaultProxy
) -> None:
    pool = await proxied_pool(pool_size=1)
    (old,) = await idle_connections(pool, 1)
    old_thread = old.thread_id()
    proxy.stall_after(100)  # the reply below is ~20 kB: it stops mid-packet

    async def read_a_big_reply() -> None:
        async with pool.acquire(timeout=1.0) as conn:
            assert conn is old
            await asyncio.wait_for(scalar(conn, "SELECT REPEAT('x', 20000)"), 0.3)

    with pytest.raises(asyncio.TimeoutError) as timed_out:
        await read_a_big_reply()
    assert not isinstance(timed_out.value, PoolTimeout)  # the holder's own timeout
    assert pool.stats().discarded == 1
    assert_empty(pool)
    await proxy.pass_through()
    async with pool.acquire(timeout=1.0) as conn:
        assert conn.thread_id() != old_thread
        assert await scalar(conn, "SELECT LENGTH(REPEAT('x', 20000))") == 20000
    pool.check_invariants()
