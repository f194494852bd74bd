"""``max_waiting``: a bounded queue of acquirers, and an immediate refusal past it.

Against the real server: a pool of one connection, held, so that every
other acquire must queue. Waiters are queued and made to leave through the
public API (timeouts on a ManualClock, cancellation), never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mysqlpool import Pool, PoolOptions, PoolOverloaded, PoolTimeout
from mysqlpool.testing import ManualClock
from polling import until

PoolFactory = Callable[..., Awaitable[Pool]]


async def queue_waiters(pool: Pool, count: int, **acquire: Any) -> list[asyncio.Task[Any]]:
    """Start ``count`` acquires and return once all of them are queued."""
    before = pool.stats().waiting
    tasks = [asyncio.ensure_future(pool.acquire(**acquire)) for _ in range(count)]
    await until(lambda: pool.stats().waiting == before + count, f"{count} waiters queued")
    assert not any(task.done() for task in tasks)
    return tasks


async def test_past_max_waiting_acquire_fails_at_once_naming_the_limit(
    make_pool: PoolFactory,
) -> None:
    clock = ManualClock()
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=3, clock=clock)
    holder = await pool.acquire()
    waiters = await queue_waiters(pool, 3)

    # No clock advance and no await point inside: refused without waiting.
    with pytest.raises(PoolOverloaded) as caught:
        await pool.acquire()
    err = caught.value
    assert isinstance(err, PoolTimeout)  # what a 503 handler already catches
    assert "max_waiting=3" in str(err)
    assert "3 already waiting" in str(err)
    assert pool.name in str(err)
    password = pool.params.password
    if isinstance(password, str) and password:
        assert password not in str(err)

    stats = pool.stats()
    assert (stats.waiting, stats.overloaded, stats.timeouts) == (3, 1, 0)
    assert stats.wait_time == 0  # the refused acquire never waited
    pool.check_invariants()

    # The queued waiters are untouched and served in order as connections return.
    await pool.release(holder)
    for task in waiters:
        conn = await task
        await pool.release(conn)
    stats = pool.stats()
    assert (stats.waiting, stats.overloaded, stats.acquires) == (0, 1, 4)


async def test_the_count_is_bounded_under_a_burst(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=5)
    holder = await pool.acquire()
    burst = [asyncio.ensure_future(pool.acquire()) for _ in range(50)]
    await until(lambda: sum(task.done() for task in burst) == 45, "45 refused")
    refused = [task for task in burst if task.done()]
    assert all(isinstance(task.exception(), PoolOverloaded) for task in refused)
    # The first five arrived first and are the ones queued.
    assert [task.done() for task in burst[:5]] == [False] * 5
    stats = pool.stats()
    assert (stats.waiting, stats.overloaded) == (5, 45)

    await pool.release(holder)
    for task in burst[:5]:
        await pool.release(await task)
    assert pool.stats().acquires == 6
    pool.check_invariants()


async def test_a_waiter_that_times_out_makes_room(make_pool: PoolFactory) -> None:
    clock = ManualClock()
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=2, timeout=1, clock=clock)
    holder = await pool.acquire()
    short = await queue_waiters(pool, 1)
    patient = await queue_waiters(pool, 1, timeout=10)
    with pytest.raises(PoolOverloaded):
        await pool.acquire()

    clock.advance(1)  # the first waiter's timeout
    with pytest.raises(PoolTimeout) as caught:
        await short[0]
    assert not isinstance(caught.value, PoolOverloaded)
    assert pool.stats().waiting == 1

    newcomer = await queue_waiters(pool, 1, timeout=10)  # room again
    stats = pool.stats()
    assert (stats.waiting, stats.overloaded, stats.timeouts) == (2, 1, 1)

    await pool.release(holder)
    for task in (*patient, *newcomer):
        await pool.release(await task)
    pool.check_invariants()


async def test_a_cancelled_waiter_makes_room(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=1)
    holder = await pool.acquire()
    (first,) = await queue_waiters(pool, 1)
    with pytest.raises(PoolOverloaded):
        await pool.acquire()

    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert pool.stats().waiting == 0

    (second,) = await queue_waiters(pool, 1)
    await pool.release(holder)
    await pool.release(await second)
    stats = pool.stats()
    assert (stats.waiting, stats.overloaded, stats.timeouts, stats.acquires) == (0, 1, 0, 2)
    pool.check_invariants()


async def test_a_served_waiter_makes_room(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=1)
    holder = await pool.acquire()
    (first,) = await queue_waiters(pool, 1)
    await pool.release(holder)
    conn = await first
    (second,) = await queue_waiters(pool, 1)  # the served one left the queue
    await pool.release(conn)
    await pool.release(await second)
    assert pool.stats().overloaded == 0


async def test_max_waiting_zero_never_waits(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=0)
    async with pool.acquire() as conn:  # a free connection is still handed out
        with pytest.raises(PoolOverloaded, match=r"max_waiting=0"):
            await pool.acquire()
    async with pool.acquire() as again:
        assert again is conn
    assert pool.stats().overloaded == 1


async def test_cancelled_waiters_are_not_counted_twice_when_the_pool_closes(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=2)
    holder = await pool.acquire()
    waiters = await queue_waiters(pool, 2)
    waiters[0].cancel()  # cancelled, and still queued when close() fails the rest
    pool.close_nowait()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert pool.stats().waiting == 0
    await pool.release(holder)
    pool.check_invariants()


def test_max_waiting_is_an_option_of_its_own() -> None:
    assert PoolOptions().max_waiting is None  # unbounded by default, as before
    pool = Pool("mysql://u:pw@127.0.0.1:3306/db?max_waiting=7")
    assert pool.options.max_waiting == 7
    assert Pool("mysql://u@h/db?max_waiting=none").options.max_waiting is None
    assert Pool("mysql://u@h/db", max_waiting=0).options.max_waiting == 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_bad_max_waiting_gets_a_clear_error(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"max_waiting must be an integer >= 0 or None"):
        Pool("mysql://u:pw@h/db", max_waiting=bad)


def test_a_bad_max_waiting_in_the_dsn_names_it_and_hides_the_password() -> None:
    with pytest.raises(ValueError, match=r"pool option max_waiting='lots' is not an integer") as e:
        Pool("mysql://u:s3cret@h/db?max_waiting=lots")
    assert "s3cret" not in str(e.value)


async def test_an_acquire_stopped_by_an_error_thrown_into_it_leaves_no_waiter(
    make_pool: PoolFactory,
) -> None:
    # Not a cancellation: an exception thrown into the waiting acquire (as a
    # framework driving the coroutine itself may do) leaves its future
    # pending. It must stop counting as waiting, and make room at once.
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=1)
    holder = await pool.acquire()
    entering = pool.acquire().__aenter__()
    entering.send(None)  # runs up to the wait: queued
    assert pool.stats().waiting == 1
    with pytest.raises(LookupError):
        entering.throw(LookupError("stopped from outside"))
    assert pool.stats().waiting == 0
    (waiter,) = await queue_waiters(pool, 1)  # its place is free
    await pool.release(holder)
    await pool.release(await waiter)
    pool.check_invariants()
