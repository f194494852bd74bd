"""Shutdown (API.md "Shutdown"): close() and terminate().

``close()`` refuses new acquires and fails waiters with ``PoolClosed``,
closes idle connections at once, waits (up to ``timeout``) for checked-out
ones to come back, closing each, then terminates the rest; it leaves no
task and no socket behind. ``terminate()`` closes everything now.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import drivers
from conftest import Admin, PoolFactory, scalar
from mysqlpool import Pool, PoolClosed
from polling import until


async def gone(admin: Admin, thread_id: int) -> None:
    """Wait until the server no longer has a session with ``thread_id``."""

    async def dead() -> bool:
        return not await admin.is_alive(thread_id)

    await until(dead)




def only_this_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


async def test_close_fails_waiters_and_waits_for_the_holder(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    held = await pool.acquire()
    thread_id = held.thread_id()

    async def wait_for_connection() -> Any:
        return await pool.acquire()

    waiters = [asyncio.create_task(wait_for_connection()) for _ in range(2)]
    await until(lambda: pool.stats().waiting == 2)

    closing = asyncio.create_task(pool.close(timeout=5))
    await until(lambda: pool.closed)
    for waiter in waiters:
        with pytest.raises(PoolClosed):
            await waiter
    with pytest.raises(PoolClosed):
        await pool.acquire()
    assert pool.stats().waiting == 0
    pool.check_invariants()

    # The holder is not interrupted: close() waits for it.
    assert not closing.done()
    assert not drivers.is_closed(held)
    assert await scalar(held, "SELECT 1") == 1
    assert not closing.done()

    await pool.release(held)
    await asyncio.wait_for(closing, 2)
    assert drivers.is_closed(held)
    stats = pool.stats()
    assert stats.discarded == 0  # it came back in time: closed, not terminated
    assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
    await gone(admin, thread_id)
    pool.check_invariants()


async def test_close_closes_idle_connections_at_once(make_pool: PoolFactory, admin: Admin) -> None:
    pool = await make_pool(pool_size=2, max_overflow=0)
    held = await pool.acquire()
    idle = await pool.acquire()
    idle_thread = idle.thread_id()
    await pool.release(idle)
    assert len(pool) == 1

    closing = asyncio.create_task(pool.close())
    await until(lambda: pool.closed)
    assert len(pool) == 0
    assert drivers.is_closed(idle)
    await gone(admin, idle_thread)
    # ... while the checked-out one is still usable and still awaited.
    assert await admin.is_alive(held.thread_id())
    assert await scalar(held, "SELECT 2") == 2
    assert not closing.done()

    await pool.release(held)
    await asyncio.wait_for(closing, 2)
    assert drivers.is_closed(held)
    assert pool.stats().open == 0
    pool.check_invariants()


async def test_close_with_timeout_terminates_a_holder_that_never_returns(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    held = await pool.acquire()
    loop = asyncio.get_running_loop()

    began = loop.time()
    await pool.close(timeout=0.2)
    elapsed = loop.time() - began

    assert 0.2 <= elapsed < 1.0
    assert pool.closed
    assert drivers.is_closed(held)
    await pool.release(held)  # the late release is accepted
    stats = pool.stats()
    assert (stats.open, stats.in_use) == (0, 0)
    pool.check_invariants()


async def test_terminate_closes_everything_now(make_pool: PoolFactory, admin: Admin) -> None:
    pool = await make_pool(pool_size=2, max_overflow=0)
    held = await pool.acquire()
    idle = await pool.acquire()
    thread_ids = [held.thread_id(), idle.thread_id()]
    await pool.release(idle)

    pool.terminate()

    assert pool.closed
    assert drivers.is_closed(held)
    assert drivers.is_closed(idle)
    assert len(pool) == 0
    for thread_id in thread_ids:
        await gone(admin, thread_id)
    with pytest.raises(PoolClosed):
        await pool.acquire()
    await asyncio.wait_for(pool.close(), 1)  # prompt: nothing left to wait for

    await pool.release(held)  # the holder's release is accepted
    assert pool.stats().open == 0
    pool.check_invariants()


async def test_concurrent_closes_both_return_and_the_pool_never_reopens(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    held = await pool.acquire()

    closing = asyncio.gather(pool.close(), pool.close())
    await until(lambda: pool.closed)
    assert not closing.done()
    await pool.release(held)
    await asyncio.wait_for(closing, 2)

    assert drivers.is_closed(held)
    with pytest.raises(PoolClosed):
        await pool.open()
    with pytest.raises(PoolClosed):
        await pool.acquire()
    await pool.close()  # once more, after the fact
    assert pool.stats().open == 0
    pool.check_invariants()


async def test_async_with_closes_on_exit_and_leaves_no_task(mysql_dsn: str) -> None:
    async with Pool(mysql_dsn, pool_size=2) as pool:
        async with pool.acquire() as conn:
            assert await scalar(conn, "SELECT 1") == 1
        assert len(pool) == 1
        assert not pool.closed
        assert not only_this_task_left()  # the reaper runs while the pool is open

    assert pool.closed
    assert drivers.is_closed(conn)
    assert pool.stats().open == 0
    pool.check_invariants()
    assert only_this_task_left()


async def test_close_leaves_no_pending_task(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2, min_size=1, recycle=0.5)
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT 1") == 1

    await pool.close()

    assert pool.stats().open == 0
    assert only_this_task_left()


async def test_close_while_a_connection_is_opening(make_pool: PoolFactory) -> None:
    entered = asyncio.Event()
    gate = asyncio.Event()
    opened: list[Any] = []

    async def init(conn: Any) -> None:
        opened.append(conn)
        entered.set()
        await gate.wait()

    pool = await make_pool(pool_size=1, max_overflow=0, init=init)

    async def acquire() -> Any:
        return await pool.acquire()

    opener = asyncio.create_task(acquire())
    await entered.wait()
    assert pool.stats().opening == 1

    closing = asyncio.create_task(pool.close())
    await until(lambda: pool.closed)
    gate.set()

    with pytest.raises(PoolClosed):
        await opener
    await asyncio.wait_for(closing, 2)
    [conn] = opened
    assert drivers.is_closed(conn)
    stats = pool.stats()
    assert (stats.open, stats.opening, stats.in_use) == (0, 0, 0)
    pool.check_invariants()
    assert only_this_task_left()


async def test_close_while_open_fills_min_size(mysql_dsn: str) -> None:
    entered = asyncio.Event()
    gate = asyncio.Event()  # never set: close() has to interrupt the opening
    opened: list[Any] = []

    async def init(conn: Any) -> None:
        opened.append(conn)
        if len(opened) == 2:
            entered.set()
        await gate.wait()

    pool = Pool(mysql_dsn, pool_size=2, min_size=2, init=init)
    try:
        opening = asyncio.create_task(pool.open())
        await entered.wait()

        await asyncio.wait_for(pool.close(), 2)

        [outcome] = await asyncio.gather(opening, return_exceptions=True)
        assert len(opened) == 2
        assert all(drivers.is_closed(conn) for conn in opened)
        stats = pool.stats()
        assert (stats.open, stats.opening) == (0, 0)
        pool.check_invariants()
        # The caller of open() learns the pool closed; it was not cancelled.
        assert isinstance(outcome, PoolClosed), repr(outcome)
    finally:
        pool.terminate()
        await pool.close()
    assert only_this_task_left()
