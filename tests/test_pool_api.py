"""The smaller parts of the Pool API: create_pool, open(), clear(), leak_timeout."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from conftest import PoolFactory
from mysqlpool import Pool, create_pool


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
    reaper = pool._reaper
    await pool.open()
    await asyncio.gather(pool.open(), pool.open())
    assert pool._reaper is reaper
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
    assert all(conn.closed for conn in idle)
    assert not held.closed
    assert pool.stats().open == 1
    pool._check_invariants()
    await pool.release(held)
    assert len(pool) == 1


async def test_leak_timeout_warns_once_with_the_acquire_site(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await make_pool(leak_timeout=0.05)
    caplog.set_level(logging.WARNING, logger="mysqlpool")
    conn = await pool.acquire()  # the line the warning must point at
    leak_reported = asyncio.get_running_loop().create_future()
    handler = _FutureHandler(leak_reported)
    logging.getLogger("mysqlpool").addHandler(handler)
    try:
        await asyncio.wait_for(leak_reported, 5)
    finally:
        logging.getLogger("mysqlpool").removeHandler(handler)
    await pool.release(conn)

    leaks = [r for r in caplog.records if "possible leak" in r.getMessage()]
    assert len(leaks) == 1
    message = leaks[0].getMessage()
    assert "test_leak_timeout_warns_once_with_the_acquire_site" in message
    assert "conn = await pool.acquire()" in message


async def test_leak_timeout_is_silent_for_a_connection_returned_in_time(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await make_pool(leak_timeout=0.2)
    caplog.set_level(logging.WARNING, logger="mysqlpool")
    async with pool.acquire():
        pass
    # The timer was cancelled at release: nothing is scheduled for it any more.
    assert all(entry.leak_handle is None for entry in pool._idle._queue)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "possible leak" in r.getMessage()]


class _FutureHandler(logging.Handler):
    """Resolves a future on the first leak warning, so the test awaits it instead of sleeping."""

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        super().__init__(logging.WARNING)
        self.fut = fut

    def emit(self, record: logging.LogRecord) -> None:
        if "possible leak" in record.getMessage() and not self.fut.done():
            self.fut.set_result(record)
