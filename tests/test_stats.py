"""PoolStats: what the counters say after known sequences and a random workload."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import drivers
from mysqlpool import Pool, PoolStats, PoolTimeout
from polling import until

ERR = drivers.errors()  # the run's driver's error classes

PoolFactory = Callable[..., Awaitable[Pool]]

API_FIELDS = {
    "pool_size",
    "max_overflow",
    "open",
    "idle",
    "in_use",
    "waiting",
    "opened",
    "closed",
    "recycled",
    "discarded",
    "acquires",
    "timeouts",
    "wait_time",
}


async def scalar(conn: Any, sql: str, *args: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql, args or None)
        row = await cur.fetchone()
    return None if row is None else row[0]


def assert_consistent(pool: Pool, stats: PoolStats | None = None) -> None:
    """The gauges add up and agree with the counters."""
    s = stats or pool.stats()
    assert s.open == s.idle + s.in_use, s
    assert s.opened - s.closed == s.open, s
    pool.check_invariants()


# ------------------------------------------------------------------- shape


def test_pool_stats_is_a_frozen_dataclass_with_the_api_fields() -> None:
    assert dataclasses.is_dataclass(PoolStats)
    names = {field.name for field in dataclasses.fields(PoolStats)}
    assert names >= API_FIELDS
    stats = Pool("mysql://root@127.0.0.1:3306/test", pool_size=4, max_overflow=2).stats()
    assert (stats.pool_size, stats.max_overflow) == (4, 2)
    assert (stats.open, stats.idle, stats.in_use, stats.waiting) == (0, 0, 0, 0)
    assert (stats.opened, stats.closed, stats.acquires, stats.timeouts) == (0, 0, 0, 0)
    assert stats.wait_time == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.open = 1  # type: ignore[misc]
    assert list(stats.hosts) == ["127.0.0.1:3306"]
    assert {stats: 1}[stats] == 1  # hashable, host table and all


async def test_stats_is_a_snapshot(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1)
    before = pool.stats()
    async with pool.acquire():
        during = pool.stats()
    assert (before.in_use, before.acquires) == (0, 0)
    assert (during.in_use, during.acquires, during.opened) == (1, 1, 1)
    assert pool.stats() != during


# ---------------------------------------------------------------- counters


async def test_counters_after_a_known_sequence(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=1)

    a = await pool.acquire()  # opens #1
    b = await pool.acquire()  # opens #2 (overflow)
    waiter = asyncio.ensure_future(pool.acquire())
    await until(lambda: pool.stats().waiting == 1, what="third acquire queued")

    await pool.release(a)  # straight to the waiter
    c = await asyncio.wait_for(waiter, 5)
    assert c is a
    await pool.release(b)  # the queue has room: kept
    await pool.release(c)  # the queue is full: overflow closed (closed 1)
    s = pool.stats()
    assert (s.opened, s.closed, s.open, s.idle, s.acquires) == (2, 1, 1, 1, 3)

    d = await pool.acquire()  # the idle one
    e = await pool.acquire()  # opens #3
    wait_time_before = pool.stats().wait_time
    with pytest.raises(PoolTimeout):
        await pool.acquire(timeout=0.05)
    assert pool.stats().wait_time - wait_time_before >= 0.05 - 1e-3
    await pool.release(d)
    await pool.release(e)  # closed 2

    s = pool.stats()
    assert s.name == pool.name
    assert (s.pool_size, s.max_overflow) == (1, 1)
    assert (s.opened, s.closed, s.open, s.idle, s.in_use) == (3, 2, 1, 1, 0)
    assert (s.waiting, s.opening) == (0, 0)
    assert (s.acquires, s.timeouts) == (5, 1)
    assert (s.recycled, s.discarded) == (0, 0)
    assert s.wait_time > 0.05 - 1e-3
    assert_consistent(pool, s)


async def test_wait_time_grows_while_queued(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    holder = await pool.acquire()
    base = pool.stats().wait_time
    waiter = asyncio.ensure_future(pool.acquire())
    await until(lambda: pool.stats().waiting == 1, what="acquire queued")
    # The server takes real time here; the waiter keeps waiting through it.
    assert await scalar(holder, "SELECT SLEEP(0.1)") == 0
    await pool.release(holder)
    conn = await asyncio.wait_for(waiter, 5)
    await pool.release(conn)
    assert pool.stats().wait_time - base >= 0.1 - 1e-3


async def test_sql_error_in_the_block_keeps_the_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1)
    with pytest.raises(ERR.ProgrammingError):
        async with pool.acquire() as conn:
            await scalar(conn, "SELEC 1")
    s = pool.stats()
    assert (s.open, s.idle, s.closed, s.discarded, s.acquires) == (1, 1, 0, 0, 1)
    assert_consistent(pool, s)


async def test_a_broken_connection_is_counted_as_discarded(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1)
    async with pool.acquire() as conn:
        conn.close()  # what a dead socket looks like to the pool
    s = pool.stats()
    assert (s.open, s.opened, s.closed, s.discarded, s.recycled) == (0, 1, 1, 1, 0)
    assert_consistent(pool, s)


# ---------------------------------------------------------- random workload

TASKS = 30
OPS_PER_TASK = 10
POOL_SIZE = 3
MAX_OVERFLOW = 3


@pytest.mark.slow
async def test_random_concurrent_workload_keeps_the_books(make_pool: PoolFactory) -> None:
    rng = random.Random(20240611)
    kinds = ["query", "bad_sql", "short_timeout", "cancel"]
    # Per operation: what it does, how long it holds (server SLEEP), and for
    # "cancel", how many loop iterations pass before the cancel lands.
    plan = [
        [
            (
                rng.choices(kinds, weights=[50, 15, 20, 15])[0],
                rng.choice([0, 0.005, 0.02, 0.05]),
                rng.choice([1, 2, 3, 4, 20, 100]),  # >= 1: the attempt has started
            )
            for _ in range(OPS_PER_TASK)
        ]
        for _ in range(TASKS)
    ]
    pool = await make_pool(pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)
    limit = POOL_SIZE + MAX_OVERFLOW
    counts: Counter[str] = Counter()
    stop = asyncio.Event()
    checks = 0
    max_open = 0

    async def attempt(timeout: float, sleep: float, bad_sql: bool) -> None:
        """One acquire; counts exactly one of acquired / timeouts / cancelled."""
        counts["attempts"] += 1
        got = False
        try:
            async with pool.acquire(timeout=timeout) as conn:
                got = True
                counts["acquired"] += 1
                if bad_sql:
                    await scalar(conn, "SELEC 1")
                assert await scalar(conn, "SELECT SLEEP(%s)", sleep) == 0
        except PoolTimeout:
            assert not got
            counts["timeouts"] += 1
        except ERR.ProgrammingError:
            assert got
            assert bad_sql
            counts["bad_sql"] += 1
        except asyncio.CancelledError:
            if not got:
                counts["cancelled"] += 1
            raise

    async def client(ops: list[tuple[str, float, int]]) -> None:
        for kind, sleep, spins in ops:
            if kind == "query":
                await attempt(10, sleep, bad_sql=False)
            elif kind == "bad_sql":
                await attempt(10, sleep, bad_sql=True)
            elif kind == "short_timeout":
                await attempt(0.05, 0.02, bad_sql=False)
            else:
                victim = asyncio.ensure_future(attempt(10, sleep, bad_sql=False))
                for _ in range(spins):
                    await asyncio.sleep(0)
                victim.cancel()
                await asyncio.gather(victim, return_exceptions=True)

    async def monitor() -> None:
        nonlocal checks, max_open
        while not stop.is_set():
            s = pool.stats()
            assert s.open == s.idle + s.in_use, s
            assert s.open + s.opening <= limit, s
            assert s.opened - s.closed == s.open, s
            pool.check_invariants()
            max_open = max(max_open, s.open)
            checks += 1
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(monitor())
    try:
        await asyncio.wait_for(asyncio.gather(*(client(ops) for ops in plan)), 20)
    finally:
        stop.set()
        await watcher  # re-raises the monitor's assertion, if any

    s = pool.stats()
    assert counts["attempts"] == TASKS * OPS_PER_TASK
    assert (s.in_use, s.waiting, s.opening) == (0, 0, 0)
    assert s.open == s.idle + s.in_use
    assert s.opened - s.closed == s.open
    assert s.acquires == counts["acquired"]
    assert s.timeouts == counts["timeouts"]
    assert s.acquires + s.timeouts + counts["cancelled"] == counts["attempts"]
    assert 0 < max_open <= limit
    assert checks > 100
    # The workload did what it says: every kind of outcome happened.
    assert counts["bad_sql"] > 0
    assert counts["timeouts"] > 0
    assert counts["cancelled"] > 0
    pool.check_invariants()

    async with pool.acquire(timeout=1) as conn:  # and the pool still works
        assert await scalar(conn, "SELECT 1") == 1
