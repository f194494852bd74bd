"""Event hooks: on_connect, on_checkout, on_checkin, on_discard."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from conftest import Admin, PoolFactory, scalar
from mysqlpool import Pool


class Recorder:
    """Collects hook calls as (event, thread id[, reason])."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def hooks(self) -> dict[str, Any]:
        return {
            "on_connect": lambda conn: self.events.append(("connect", conn.thread_id())),
            "on_checkout": lambda conn: self.events.append(("checkout", conn.thread_id())),
            "on_checkin": lambda conn: self.events.append(("checkin", conn.thread_id())),
            "on_discard": lambda conn, why: self.events.append(("discard", why)),
        }


async def test_hooks_see_each_step_of_a_connections_life(
    make_pool: PoolFactory, admin: Admin
) -> None:
    seen = Recorder()
    pool = await make_pool(pool_size=1, max_overflow=0, **seen.hooks())
    async with pool.acquire() as conn:
        first = conn.thread_id()
    async with pool.acquire() as conn:
        await admin.kill(conn)
        with pytest.raises(Exception):  # noqa: B017, PT011 - 2006 or 2013, whichever comes
            await scalar(conn, "SELECT 1")
    assert seen.events == [
        ("connect", first),
        ("checkout", first),
        ("checkin", first),
        ("checkout", first),
        ("checkin", first),
        ("discard", "connection closed"),
    ]


async def test_overflow_and_close_are_reported_to_on_discard(make_pool: PoolFactory) -> None:
    reasons: list[str] = []
    pool = await make_pool(
        pool_size=1, max_overflow=1, on_discard=lambda conn, why: reasons.append(why)
    )
    first, second = await pool.acquire(), await pool.acquire()
    await pool.release(first)
    await pool.release(second)  # the queue holds pool_size=1 already
    assert reasons == ["pool full"]
    await pool.close()
    assert reasons == ["pool full", "pool closed"]


async def test_a_failing_hook_is_logged_and_the_pool_goes_on(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(conn: Any) -> None:
        raise RuntimeError("tracing backend down")

    pool = await make_pool(on_checkout=broken, on_checkin=broken)
    for _ in range(2):
        async with pool.acquire() as conn:
            assert await scalar(conn, "SELECT 1") == 1
    stats = pool.stats()
    assert (stats.acquires, stats.opened, stats.idle, stats.discarded) == (2, 1, 1, 0)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "hook" in r.message]
    assert len(failures) == 4


def test_a_hook_that_is_not_callable_is_refused(mysql_dsn: str) -> None:
    with pytest.raises(ValueError, match="on_checkout"):
        Pool(mysql_dsn, on_checkout="print")  # type: ignore[arg-type]
