"""PoolManager (API.md "PoolManager"): one pool per connection identity.

Parameters that change who is logged in where and how (db, user, password,
charset...) make different keys, and different keys never share a pool: a
wrong password gets its own pool and fails there, it never borrows a
connection somebody else logged in with the right one.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pymysql
import pytest
import pytest_asyncio

import drivers
from conftest import Admin, scalar
from mysqlpool import ConnectParams, Pool, PoolClosed, PoolManager, parse_dsn

TEST_USER = "mp_test_user_" + secrets.token_hex(3)  # unique per run: suites may share a server
RIGHT_PASSWORD = "right-pw"
WRONG_PASSWORD = "wrong-pw"




async def check_out(manager: PoolManager, dsn: str | None = None, **kwargs: Any) -> Any:
    """Check out and return one connection; what ``SELECT 1`` answered."""
    async with manager.acquire(dsn, **kwargs) as conn:
        return await scalar(conn, "SELECT 1")


def check_all(manager: PoolManager) -> None:
    for pool in manager.pools.values():
        pool.check_invariants()


@pytest_asyncio.fixture
async def manager() -> AsyncIterator[PoolManager]:
    """A PoolManager whose pools are checked and closed after the test."""
    manager = PoolManager(pool_size=1, max_overflow=0)
    try:
        yield manager
    finally:
        check_all(manager)
        await manager.close(timeout=5)
        for pool in manager.pools.values():
            assert pool.closed
            assert pool.stats().open == 0


@pytest.fixture
def params(mysql_dsn: str) -> ConnectParams:
    return parse_dsn(mysql_dsn)


@pytest_asyncio.fixture
async def test_user(admin: Admin) -> AsyncIterator[str]:
    """A user with a password that may read ``test``; dropped afterwards."""
    hosts = ("127.0.0.1", "localhost")
    for host in hosts:
        await admin.scalar(
            f"CREATE USER IF NOT EXISTS '{TEST_USER}'@'{host}' IDENTIFIED BY %s", RIGHT_PASSWORD
        )
        await admin.scalar(f"GRANT SELECT ON test.* TO '{TEST_USER}'@'{host}'")
    try:
        yield TEST_USER
    finally:
        for host in hosts:
            with contextlib.suppress(pymysql.err.MySQLError):
                await admin.scalar(f"DROP USER IF EXISTS '{TEST_USER}'@'{host}'")


async def test_same_dsn_gives_the_same_pool(manager: PoolManager, mysql_dsn: str) -> None:
    first = await manager.get_pool(mysql_dsn)
    second = await manager.get_pool(mysql_dsn)

    assert first is second
    assert len(manager.pools) == 1


async def test_dsn_and_equal_keywords_share_one_pool(
    manager: PoolManager, mysql_dsn: str, params: ConnectParams
) -> None:
    async with manager.acquire(mysql_dsn) as conn:
        thread_id = conn.thread_id()
    async with manager.acquire(
        host=params.host,
        port=params.port,
        user=params.user,
        password=params.password,
        db=params.db,
        driver=params.driver,
    ) as conn:
        assert conn.thread_id() == thread_id  # the same pool's one connection
        assert await scalar(conn, "SELECT 1") == 1

    assert len(manager.pools) == 1
    [pool] = manager.pools.values()
    assert pool is await manager.get_pool(mysql_dsn)
    assert pool.stats().acquires == 2
    assert pool.stats().opened == 1


async def test_different_identities_get_different_pools(
    manager: PoolManager, mysql_dsn: str, params: ConnectParams
) -> None:
    base = await manager.get_pool(mysql_dsn)
    other_db = await manager.get_pool(mysql_dsn, db="information_schema")
    other_user = await manager.get_pool(mysql_dsn, user="someone_else")
    other_password = await manager.get_pool(mysql_dsn, password="another-password")
    other_charset = await manager.get_pool(mysql_dsn, charset="latin1")

    pools = [base, other_db, other_user, other_password, other_charset]
    assert len({id(pool) for pool in pools}) == 5
    assert len(manager.pools) == 5
    async with manager.acquire(mysql_dsn, db="information_schema") as conn:
        assert await scalar(conn, "SELECT DATABASE()") == "information_schema"
    assert other_db.stats().acquires == 1
    assert base.stats().acquires == 0


async def test_concurrent_get_pool_creates_one_pool(manager: PoolManager, mysql_dsn: str) -> None:
    pools = await asyncio.gather(*(manager.get_pool(mysql_dsn) for _ in range(50)))

    assert len({id(pool) for pool in pools}) == 1
    assert len(manager.pools) == 1
    assert next(iter(manager.pools.values())) is pools[0]


async def test_wrong_password_never_gets_the_logged_in_connection(
    manager: PoolManager, params: ConnectParams, test_user: str
) -> None:
    login: dict[str, Any] = {
        "host": params.host,
        "port": params.port,
        "db": params.db,
        "driver": params.driver,
    }

    async with manager.acquire(**login, user=test_user, password=RIGHT_PASSWORD) as conn:
        logged_in = conn
        assert await scalar(conn, "SELECT CURRENT_USER()") == f"{test_user}@{params.host}"
    [right_pool] = manager.pools.values()
    assert len(right_pool) == 1  # the logged-in connection waits in its pool

    with pytest.raises(drivers.errors().OperationalError) as excinfo:
        await check_out(manager, **login, user=test_user, password=WRONG_PASSWORD)

    assert excinfo.value.args[0] == 1045  # access denied
    texts = [
        str(excinfo.value),
        repr(excinfo.value),
        "".join(traceback.format_exception(excinfo.value)),  # with its whole chain
    ]
    for text in texts:
        assert WRONG_PASSWORD not in text
        assert RIGHT_PASSWORD not in text
    assert len(manager.pools) == 2
    wrong_pool = next(pool for pool in manager.pools.values() if pool is not right_pool)
    stats = wrong_pool.stats()
    assert (stats.acquires, stats.open, stats.in_use) == (0, 0, 0)
    # The right pool's connection stayed where it was, untouched.
    right = right_pool.stats()
    assert (right.acquires, right.idle, right.in_use) == (1, 1, 0)
    assert not drivers.is_closed(logged_in)
    for text in manager.stats():
        assert RIGHT_PASSWORD not in text
        assert WRONG_PASSWORD not in text


async def test_stats_keys_are_redacted_and_pools_is_read_only(
    manager: PoolManager, mysql_dsn: str
) -> None:
    secret = "hunter2-in-the-dsn"
    pool = await manager.get_pool(mysql_dsn, password=secret)  # never connects
    await manager.get_pool(mysql_dsn)

    stats = manager.stats()
    assert len(stats) == 2
    for name, pool_stats in stats.items():
        assert secret not in name
        assert secret not in repr(pool_stats)
    assert any("***" in name for name in stats)

    pools = manager.pools
    key = next(iter(pools))
    with pytest.raises(TypeError):
        pools[key] = pool  # type: ignore[index]
    with pytest.raises(TypeError):
        del pools[key]  # type: ignore[attr-defined]
    for key in pools:
        assert secret not in repr(key)
    assert len(manager.pools) == 2


async def test_close_closes_every_pool_and_refuses_new_ones(mysql_dsn: str) -> None:
    manager = PoolManager(pool_size=1, max_overflow=0)
    async with manager.acquire(mysql_dsn) as conn:
        assert await scalar(conn, "SELECT 1") == 1
    await manager.get_pool(mysql_dsn, db="information_schema")
    pools = list(manager.pools.values())

    await manager.close()

    assert manager.closed
    assert len(pools) == 2
    for pool in pools:
        assert pool.closed
        assert pool.stats().open == 0
        pool.check_invariants()
    assert drivers.is_closed(conn)
    with pytest.raises(PoolClosed):
        await manager.get_pool(mysql_dsn)
    with pytest.raises(PoolClosed):
        await check_out(manager, mysql_dsn)
    with pytest.raises(PoolClosed):
        await manager.get_pool(mysql_dsn, db="mysql")  # a new key: no new pool either
    assert len(manager.pools) == 2


async def test_async_with_closes_the_manager(mysql_dsn: str) -> None:
    async with PoolManager(pool_size=1, max_overflow=0) as manager:
        async with manager.acquire(mysql_dsn) as conn:
            assert await scalar(conn, "SELECT 1") == 1
        [pool] = manager.pools.values()
        assert not pool.closed

    assert manager.closed
    assert pool.closed
    assert drivers.is_closed(conn)
    assert pool.stats().open == 0
    pool.check_invariants()


async def test_manager_options_reach_its_pools(mysql_dsn: str) -> None:
    async with PoolManager(pool_size=3, max_overflow=1, reset_on_return="reset") as manager:
        pool = await manager.get_pool(mysql_dsn)
        assert isinstance(pool, Pool)
        assert pool.size == 3
        assert pool.stats().max_overflow == 1
        async with manager.acquire(mysql_dsn) as conn:
            await scalar(conn, "SET @left_behind = 1")
        async with manager.acquire(mysql_dsn) as again:
            assert again is conn
            assert await scalar(again, "SELECT @left_behind") is None  # reset ran
        pool.check_invariants()


@pytest.mark.parametrize(
    "options",
    [{"pool_size": 0}, {"max_overflow": -1}, {"reset_on_return": "bogus"}, {"timeout": -1}],
    ids=["pool_size=0", "max_overflow=-1", "reset_on_return=bogus", "timeout=-1"],
)
async def test_a_bad_option_fails_at_construction(options: dict[str, Any]) -> None:
    option = next(iter(options))
    with pytest.raises(ValueError, match=option):
        PoolManager(**options)


async def test_stats_keep_pools_whose_dsns_differ_only_in_the_password(
    manager: PoolManager,
) -> None:
    # Never connected: stats need no server.
    await manager.get_pool("mysql://app:first-pw@127.0.0.1:1/shop")
    await manager.get_pool("mysql://app:second-pw@127.0.0.1:1/shop")
    labels = list(manager.stats())
    assert labels == ["mysql://app:***@127.0.0.1:1/shop", "mysql://app:***@127.0.0.1:1/shop #2"]
