"""Drop-in mode over asyncmy: with asyncmy installed, ``mysqlpool.enable()``
also makes plain ``asyncmy.connect`` code check connections out of pools
(running on the asyncmy driver), with the same return-on-close semantics as
for aiomysql (see test_dropin.py)."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import mysqlpool
from conftest import Admin
from mysqlpool import PoolManager, parse_dsn
from polling import until

asyncmy = pytest.importorskip("asyncmy")
asyncmy_connection = pytest.importorskip("asyncmy.connection")
from mysqlpool._driver_asyncmy import ASYNCMY  # noqa: E402  (needs asyncmy)

ORIGINALS = {
    (asyncmy, "connect"): asyncmy.connect,
    (asyncmy_connection, "connect"): asyncmy_connection.connect,
}


@pytest_asyncio.fixture
async def dropin_off(admin: Admin) -> AsyncIterator[None]:
    """Drop-in mode is off before and after; asyncmy's connect is the very
    original object again; no task or socket is left behind."""
    assert not mysqlpool.is_enabled()
    try:
        yield
    finally:
        await mysqlpool.disable().wait(timeout=5)
        for (module, name), original in ORIGINALS.items():
            assert getattr(module, name) is original
    current = asyncio.current_task()
    assert {task for task in asyncio.all_tasks() if task is not current} == set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.fixture
def login(mysql_dsn: str) -> dict[str, Any]:
    """``asyncmy.connect`` keywords for the test server, as legacy code spells them."""
    params = parse_dsn(mysql_dsn)
    return {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "password": params.password,
        "database": params.db or "test",
    }


def only_pool(manager: PoolManager) -> Any:
    [pool] = manager.pools.values()
    return pool


async def one_value(conn: Any, sql: str) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        (value,) = await cur.fetchone()
    return value


async def test_enable_patches_asyncmy_connect_and_close_gives_the_connection_back(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    assert asyncmy.connect is not ORIGINALS[(asyncmy, "connect")]

    first = await asyncmy.connect(**login)
    first_id = await one_value(first, "SELECT CONNECTION_ID()")
    first.close()
    async with asyncmy.connect(**login) as second:
        assert await one_value(second, "SELECT CONNECTION_ID()") == first_id
    third = await asyncmy_connection.connect(**login)
    assert await one_value(third, "SELECT CONNECTION_ID()") == first_id
    await third.ensure_closed()

    pool = only_pool(manager)
    assert pool.params.driver == "asyncmy"
    stats = pool.stats()
    assert (stats.opened, stats.acquires, stats.in_use, stats.idle) == (1, 3, 0, 1)


async def test_session_state_does_not_leak_to_the_next_connect(
    dropin_off: None, login: dict[str, Any]
) -> None:
    mysqlpool.enable(pool_size=1, max_overflow=0)
    async with asyncmy.connect(**login) as conn, conn.cursor() as cur:
        await cur.execute("SET @legacy_marker = 42")
    async with asyncmy.connect(**login) as conn:
        assert await one_value(conn, "SELECT @legacy_marker") is None


async def test_connection_killed_while_checked_out_is_discarded(
    dropin_off: None, login: dict[str, Any], admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await asyncmy.connect(**login)
    killed = await one_value(conn, "SELECT CONNECTION_ID()")
    await admin.kill(conn)
    with pytest.raises(asyncmy.errors.OperationalError):
        await one_value(conn, "SELECT 1")
    conn.close()

    pool = only_pool(manager)
    await until(lambda: pool.stats().in_use == 0, "slot freed")
    assert pool.stats().discarded == 1
    async with asyncmy.connect(**login) as fresh:
        assert await one_value(fresh, "SELECT CONNECTION_ID()") != killed


async def test_query_cancelled_mid_reply_is_closed_for_real_and_never_reused(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await asyncmy.connect(**login)
    interrupted = await one_value(conn, "SELECT CONNECTION_ID()")
    with pytest.raises(asyncio.TimeoutError):
        # asyncmy closes the connection itself (its close() reaches the
        # override): the drop-in mode must still close the socket.
        await asyncio.wait_for(one_value(conn, "SELECT SLEEP(2)"), 0.1)

    pool = only_pool(manager)
    await until(lambda: pool.stats().in_use == 0, "slot freed")
    assert not conn.connected
    assert pool.stats().idle == 0
    assert pool.stats().discarded == 1
    conn.close()  # the holder's own close afterwards is harmless
    async with asyncmy.connect(**login) as fresh:
        assert await one_value(fresh, "SELECT CONNECTION_ID()") != interrupted


async def test_disable_restores_asyncmy_and_close_really_closes(
    dropin_off: None, login: dict[str, Any]
) -> None:
    mysqlpool.enable()
    await mysqlpool.disable()
    for (module, name), original in ORIGINALS.items():
        assert getattr(module, name) is original
    conn = await asyncmy.connect(**login)
    assert await one_value(conn, "SELECT 1") == 1
    conn.close()
    assert ASYNCMY.is_dead(conn)  # closed for real (``connected`` says so only since 0.2.18)
