"""The smaller parts of the Pool API: create_pool, open(), clear(), leak_timeout."""

from __future__ import annotations

import asyncio
import logging

import pytest

import drivers
from conftest import PoolFactory
from mysqlpool import Pool, create_pool
from mysqlpool.testing import ManualClock
from polling import pool_tasks


async def test_create_pool_returns_an_opened_pool(mysql_dsn: str) -> None:
    pool = await create_pool(mysql_dsn, min_size=2, pool_size=3)
    try:
        assert isinstance(pool, Pool)
        assert "open" in repr(pool)
        assert len(pool) == 2  # min_size opened before it returned
        assert pool.size == 3
    finally:
        await pool.close()
    assert pool.closed
    assert pool.stats().open == 0


async def test_open_is_idempotent(make_pool: PoolFactory) -> None:
    pool = await make_pool(min_size=1)
    reaper = pool_tasks(pool, "reaper")
    await pool.open()
    await asyncio.gather(pool.open(), pool.open())
    assert len(reaper) == 1
    assert pool_tasks(pool, "reaper") == reaper  # the same task: no second reaper
    assert pool.stats().opened == 1


async def test_clear_closes_idle_connections_only(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=3)
    held = await pool.acquire()
    idle = [await pool.acquire() for _ in range(2)]
    for conn in idle:
        await pool.release(conn)
    assert len(pool) == 2

    await pool.clear()

    assert len(pool) == 0
    assert all(drivers.is_closed(conn) for conn in idle)
    assert not drivers.is_closed(held)
    assert pool.stats().open == 1
    pool.check_invariants()
    await pool.release(held)
    assert len(pool) == 1


async def test_leak_timeout_warns_once_with_the_acquire_site(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    pool = await make_pool(leak_timeout=30, clock=clock)
    caplog.set_level(logging.WARNING, logger="mysqlpool")
    conn = await pool.acquire()  # the line the warning must point at
    clock.advance(29)
    assert not leak_warnings(caplog)
    clock.advance(1)  # held for leak_timeout
    clock.advance(60)  # and much longer: still one warning
    await pool.release(conn)

    leaks = leak_warnings(caplog)
    assert len(leaks) == 1
    assert "test_leak_timeout_warns_once_with_the_acquire_site" in leaks[0]
    assert "conn = await pool.acquire()" in leaks[0]
    assert "more than 30.0 s" in leaks[0]


async def test_leak_timeout_is_silent_for_a_connection_returned_in_time(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    pool = await make_pool(leak_timeout=30, clock=clock)
    caplog.set_level(logging.WARNING, logger="mysqlpool")
    async with pool.acquire():
        clock.advance(29)
    clock.advance(60)  # its timer was stopped at the release
    assert not leak_warnings(caplog)


def leak_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "possible leak" in r.getMessage()]
