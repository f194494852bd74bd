"""What an ORM bridge needs beyond acquire and release: ``discard()``, a
synchronous give-back for callers that can't await; ``release_nowait()``,
a release that leaves only its I/O to await; and ``transaction_ended()``,
which spares a ROLLBACK after the holder's own."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import drivers
from conftest import Admin, PoolFactory, scalar
from mysqlpool import PoolError
from polling import until


@pytest_asyncio.fixture
async def table(admin: Admin) -> AsyncIterator[str]:
    name = f"bridge_{uuid.uuid4().hex[:12]}"
    await admin.scalar(f"CREATE TABLE {name} (v INT) ENGINE=InnoDB")
    try:
        yield name
    finally:
        await admin.scalar(f"DROP TABLE IF EXISTS {name}")


async def session_questions(conn: object) -> int:
    """The server's count of statements on ``conn``'s session (this one included)."""
    async with conn.cursor() as cur:  # type: ignore[attr-defined]
        await cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
        (_, value) = await cur.fetchone()
    return int(value)


# -- discard ----------------------------------------------------------------------------


async def test_discard_closes_and_frees_the_slot_before_it_returns(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    conn = await pool.acquire()
    thread = conn.thread_id()
    waiter = asyncio.ensure_future(pool.acquire(timeout=5))
    await until(lambda: pool.stats().waiting == 1, "the second acquire waits")

    pool.discard(conn)  # no await: done on return

    assert drivers.is_closed(conn)
    assert pool.stats().waiting == 0  # the slot went to the waiter at once
    fresh = await waiter
    assert fresh is not conn
    await pool.release(fresh)
    stats = pool.stats()
    assert (stats.discarded, stats.opened, stats.in_use) == (1, 2, 0)
    await until(lambda: _gone(admin, thread), "the discarded session ended")


async def test_discard_works_from_a_finalizer_outside_any_coroutine(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    conn = await pool.acquire()

    class Holder:
        def __del__(self) -> None:
            pool.discard(conn)  # what a garbage-collection callback can do

    holder = Holder()
    del holder
    gc.collect()
    assert pool.stats().in_use == 0
    async with pool.acquire(timeout=5) as again:
        assert await scalar(again, "SELECT 1") == 1


async def test_discard_refuses_a_foreign_or_returned_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1)
    other = await make_pool(pool_size=1)
    conn = await pool.acquire()
    pool.discard(conn)
    with pytest.raises(PoolError, match="already released"):
        pool.discard(conn)
    foreign = await other.acquire()
    with pytest.raises(PoolError, match="not acquired from"):
        pool.discard(foreign)
    await other.release(foreign)


# -- release_nowait ---------------------------------------------------------------------


async def test_release_nowait_settles_a_clean_return_at_once(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)  # autocommit on: nothing to roll back
    conn = await pool.acquire()
    assert await scalar(conn, "SELECT 1") == 1

    assert pool.release_nowait(conn) is None

    stats = pool.stats()
    assert (stats.idle, stats.in_use) == (1, 0)
    assert pool.try_acquire() is conn  # reusable as it is, no I/O needed
    assert pool.release_nowait(conn) is None


async def test_release_nowait_leaves_the_rollback_to_await_and_keeps_the_slot(
    make_pool: PoolFactory, table: str
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, autocommit=False)
    conn = await pool.acquire()
    before = await session_questions(conn)
    async with conn.cursor() as cur:
        await cur.execute(f"INSERT INTO {table} VALUES (1)")

    pending = pool.release_nowait(conn)

    assert pending is not None
    assert pool.stats().in_use == 1  # the slot stays taken until the reset ends
    assert pool.try_acquire() is None
    await pending
    stats = pool.stats()
    assert (stats.idle, stats.in_use, stats.discarded) == (1, 0, 0)
    async with pool.acquire() as again:
        assert again is conn
        after = await session_questions(again)
        assert await scalar(again, f"SELECT COUNT(*) FROM {table}") == 0  # rolled back
    # SHOW, INSERT, the ROLLBACK and this SHOW.
    assert after - before == 3


async def test_release_nowait_discards_as_release_does(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2, max_overflow=0)
    unwanted = await pool.acquire()
    interrupted = await pool.acquire()

    assert pool.release_nowait(unwanted, discard=True) is None
    # An interruption leaves the protocol state unknown: closed, not reused.
    assert pool.release_nowait(interrupted, error=asyncio.CancelledError()) is None

    assert drivers.is_closed(unwanted)
    assert drivers.is_closed(interrupted)
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.discarded) == (0, 0, 2)


async def test_release_nowait_refuses_a_foreign_or_returned_connection(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1)
    other = await make_pool(pool_size=1)
    conn = await pool.acquire()
    assert pool.release_nowait(conn) is None
    with pytest.raises(PoolError, match="already released"):
        pool.release_nowait(conn)
    foreign = await other.acquire()
    with pytest.raises(PoolError, match="not acquired from"):
        pool.release_nowait(foreign)
    await other.release(foreign)


# -- transaction_ended ----------------------------------------------------------------


async def test_after_the_holders_own_commit_no_rollback_is_sent(
    make_pool: PoolFactory, table: str
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, autocommit=False)
    async with pool.acquire() as conn:
        before = await session_questions(conn)
        async with conn.cursor() as cur:
            await cur.execute(f"INSERT INTO {table} VALUES (1)")
        await conn.commit()
        pool.transaction_ended(conn)
    async with pool.acquire() as conn:
        after = await session_questions(conn)
    # INSERT, COMMIT and this SHOW; no ROLLBACK on the way back.
    assert after - before == 3


async def test_a_statement_after_transaction_ended_is_rolled_back_as_usual(
    make_pool: PoolFactory, table: str, admin: Admin
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, autocommit=False)
    async with pool.acquire() as conn:
        await conn.commit()
        pool.transaction_ended(conn)
        async with conn.cursor() as cur:
            await cur.execute(f"INSERT INTO {table} VALUES (1)")
    async with pool.acquire() as conn:
        assert await scalar(conn, f"SELECT COUNT(*) FROM {table}") == 0
    assert await admin.scalar(f"SELECT COUNT(*) FROM {table}") == 0


async def test_transaction_ended_needs_a_checked_out_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1)
    conn = await pool.acquire()
    await pool.release(conn)
    with pytest.raises(PoolError, match="not checked out"):
        pool.transaction_ended(conn)


async def _gone(admin: Admin, thread: int) -> bool:
    return not await admin.is_alive(thread)
