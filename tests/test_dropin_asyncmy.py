"""Drop-in mode over asyncmy (issue 11): with asyncmy installed,
``mysqlpool.enable()`` also makes plain ``asyncmy.connect`` code check
connections out of pools running on the asyncmy driver, with the same
return-on-close semantics as for aiomysql (test_dropin.py).

Where it matters, a body of ordinary asyncmy code runs twice, plain and then
under ``mysqlpool.enable()``, and what it saw is compared. The pools are
small (``pool_size=1``) so the second ``connect()`` reuses the first one's
connection, where a leftover would show.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomysql
import aiomysql.connection
import pytest
import pytest_asyncio

import mysqlpool
from conftest import Admin
from mysqlpool import PoolManager, parse_dsn
from polling import until

asyncmy = pytest.importorskip("asyncmy")
asyncmy_connection = pytest.importorskip("asyncmy.connection")
asyncmy_errors = pytest.importorskip("asyncmy.errors")
asyncmy_cursors = pytest.importorskip("asyncmy.cursors")
from mysqlpool._driver_asyncmy import ASYNCMY  # noqa: E402  (needs asyncmy)

# The very objects drop-in mode must put back (aiomysql's too: one enable()
# patches both).
ORIGINALS = {
    (asyncmy, "connect"): asyncmy.connect,
    (asyncmy_connection, "connect"): asyncmy_connection.connect,
    (aiomysql, "connect"): aiomysql.connect,
    (aiomysql.connection, "connect"): aiomysql.connection.connect,
}

Body = Callable[[dict[str, Any]], Awaitable[Any]]


def return_tasks() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "mysqlpool drop-in return" and not task.done()
    ]


@pytest_asyncio.fixture
async def dropin_off(admin: Admin) -> AsyncIterator[None]:
    """Drop-in mode is off before and after; every patched attribute is the
    very original object again; no task or socket is left behind."""
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
    """``asyncmy.connect`` keywords for the test server, as asyncmy code spells them."""
    params = parse_dsn(mysql_dsn)
    return {
        "host": params.host,
        "port": params.port,
        "user": params.user,
        "password": params.password,
        "database": params.db or "test",
    }


async def side_by_side(body: Body, login: dict[str, Any], **options: Any) -> tuple[Any, Any]:
    """``plain, pooled``: what ``body`` saw on plain asyncmy, then under
    ``enable(pool_size=1, max_overflow=0, **options)``."""
    plain = await body(login)
    options.setdefault("pool_size", 1)
    options.setdefault("max_overflow", 0)
    mysqlpool.enable(**options)
    try:
        pooled = await body(login)
        await until(lambda: not return_tasks(), "returns finished")
    finally:
        await mysqlpool.disable().wait(timeout=5)
    return plain, pooled


def only_pool(manager: PoolManager) -> Any:
    [pool] = manager.pools.values()
    return pool


async def one_value(conn: Any, sql: str) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        (value,) = await cur.fetchone()
    return value


# ------------------------------------------------- checkouts and returns


async def test_enable_patches_asyncmy_connect_and_close_gives_the_connection_back(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    assert asyncmy.connect is not ORIGINALS[(asyncmy, "connect")]
    assert asyncmy_connection.connect is asyncmy.connect

    first = await asyncmy.connect(**login)
    assert isinstance(first, asyncmy_connection.Connection)  # the proxy says so
    assert first.connected
    first_id = await one_value(first, "SELECT CONNECTION_ID()")
    first.close()
    assert not first.connected  # as in asyncmy: this object is done with
    with pytest.raises(first.Error):  # DB-API's conn.Error, still there
        first.cursor()  # a stale reference never reaches the pooled connection
    with pytest.raises(asyncmy_errors.InterfaceError):
        first.host  # noqa: B018  (an instance attribute, through __getattr__)
    async with asyncmy.connect(**login) as second:
        assert second is not first  # an object of its own...
        assert await one_value(second, "SELECT CONNECTION_ID()") == first_id  # ...same session
    third = await asyncmy_connection.connect(**login)
    assert await one_value(third, "SELECT CONNECTION_ID()") == first_id
    await third.ensure_closed()

    pool = only_pool(manager)
    assert pool.params.driver == "asyncmy"
    await until(lambda: pool.stats().idle == 1, "connection back in the pool")
    stats = pool.stats()
    assert (stats.opened, stats.acquires, stats.in_use, stats.discarded) == (1, 3, 0, 0)


async def test_asyncmy_keywords_mean_what_they_mean_to_asyncmy(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    async with asyncmy.connect(**login) as conn:
        assert await one_value(conn, "SELECT DATABASE()") == login["database"]
    params = only_pool(manager).params
    assert params.db == login["database"]  # database=, asyncmy's name for db
    assert params.connect_timeout == 10  # asyncmy's default, not "no limit"
    # asyncmy's own keywords pass through to its connect, on a pool of their own.
    dict_rows = asyncmy_cursors.DictCursor
    async with asyncmy.connect(**login, cursor_cls=dict_rows) as conn, conn.cursor() as cur:
        await cur.execute("SELECT 7 AS seven")
        assert await cur.fetchone() == {"seven": 7}
    assert len(manager.pools) == 2

    with pytest.raises(TypeError, match=r"asyncmy\.connect\(sock=\.\.\.\) can't be pooled"):
        await asyncmy.connect(sock=object(), **login)
    with pytest.raises(TypeError):
        asyncmy.connect(no_such_keyword=1)  # refused at the call, as asyncmy does


async def test_aiomysql_and_asyncmy_code_get_pools_on_their_own_drivers(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    aiomysql_login = {**login, "db": login["database"]}
    del aiomysql_login["database"]
    async with aiomysql.connect(**aiomysql_login) as a, asyncmy.connect(**login) as b:
        assert isinstance(a, aiomysql.Connection)
        assert isinstance(b, asyncmy_connection.Connection)
        assert await one_value(a, "SELECT 1") == await one_value(b, "SELECT 1") == 1
    drivers = sorted(pool.params.driver for pool in manager.pools.values())
    assert drivers == ["aiomysql", "asyncmy"]


async def test_the_holder_as_its_own_context_manager_gives_it_back(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    async with await asyncmy.connect(**login) as conn:
        first = await one_value(conn, "SELECT CONNECTION_ID()")
    assert not conn.connected
    pool = only_pool(manager)
    assert pool.stats().idle == 1  # __aexit__ waited for the return
    async with asyncmy.connect(**login) as again:
        assert await one_value(again, "SELECT CONNECTION_ID()") == first


async def test_session_state_does_not_leak_to_the_next_connect(
    dropin_off: None, login: dict[str, Any]
) -> None:
    async def body(login: dict[str, Any]) -> Any:
        seen = []
        for _ in range(2):
            async with asyncmy.connect(**login) as conn, conn.cursor() as cur:
                await cur.execute("SELECT @legacy_marker")
                seen.append(await cur.fetchone())
                await cur.execute("SET @legacy_marker = 42")
        return seen

    plain, pooled = await side_by_side(body, login)
    assert plain == pooled == [(None,), (None,)]


# ------------------------------------------ a stale reference stays closed


async def test_a_stale_second_close_never_touches_the_next_holder(
    dropin_off: None, login: dict[str, Any]
) -> None:
    async def body(login: dict[str, Any]) -> Any:
        a = await asyncmy.connect(**login)
        await a.ensure_closed()
        b = await asyncmy.connect(**login)  # the pool's only connection, again
        a.close()  # a stray second close, through the first holder's reference
        row = await one_value(b, "SELECT 1")
        await a.ensure_closed()  # and another one
        row_after = await one_value(b, "SELECT 1")
        await b.ensure_closed()
        return row, row_after, a.connected, b.connected

    plain, pooled = await side_by_side(body, login)
    assert plain == pooled == (1, 1, False, False)


async def test_a_returned_connection_refuses_statements_as_a_closed_one_does(
    dropin_off: None, login: dict[str, Any]
) -> None:
    async def body(login: dict[str, Any]) -> Any:
        conn = await asyncmy.connect(**login)
        await conn.ensure_closed()
        with pytest.raises(asyncmy_errors.InterfaceError) as caught:
            await conn.query("SELECT 1")
        return conn.connected, caught.value.args

    plain, pooled = await side_by_side(body, login)
    assert plain == pooled == (False, (0, "Not connected"))


# -------------------------------------- an unusable connection is discarded


async def test_error_leaving_async_with_discards_a_lost_connection(
    dropin_off: None, login: dict[str, Any], admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    killed: list[int] = []

    async def query_after_kill() -> None:
        async with asyncmy.connect(**login) as conn:
            killed.append(conn.thread_id())
            await admin.kill(conn)
            await one_value(conn, "SELECT 1")

    with pytest.raises(asyncmy_errors.OperationalError):
        await query_after_kill()

    pool = only_pool(manager)
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.discarded) == (0, 0, 1)
    async with asyncmy.connect(**login) as fresh:
        assert fresh.thread_id() != killed[0]


async def test_an_sql_error_leaving_async_with_keeps_the_connection(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    ids: list[int] = []

    async def bad_statement() -> None:
        async with asyncmy.connect(**login) as conn:
            ids.append(conn.thread_id())
            await one_value(conn, "SELECT * FROM no_such_table_here")

    with pytest.raises(asyncmy_errors.ProgrammingError):
        await bad_statement()
    async with asyncmy.connect(**login) as conn:
        assert conn.thread_id() == ids[0]  # the server replied: the state is known
    assert only_pool(manager).stats().discarded == 0


async def test_connection_killed_while_checked_out_is_discarded(
    dropin_off: None, login: dict[str, Any], admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await asyncmy.connect(**login)
    killed = conn.thread_id()
    await admin.kill(conn)
    with pytest.raises(asyncmy_errors.OperationalError):
        await one_value(conn, "SELECT 1")
    conn.close()

    pool = only_pool(manager)
    await until(lambda: pool.stats().in_use == 0, "slot freed")
    assert pool.stats().discarded == 1
    async with asyncmy.connect(**login) as fresh:
        assert fresh.thread_id() != killed


async def test_query_cancelled_mid_reply_is_closed_for_real_and_never_reused(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await asyncmy.connect(**login)
    interrupted = conn.thread_id()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(one_value(conn, "SELECT SLEEP(2)"), 0.1)
    # asyncmy closed the connection itself: the socket is closed now, not at
    # the holder's return.
    assert not conn.connected
    conn.close()

    pool = only_pool(manager)
    await until(lambda: pool.stats().in_use == 0, "slot freed")
    assert (pool.stats().idle, pool.stats().discarded) == (0, 1)
    conn.close()  # the holder's own close afterwards is harmless
    async with asyncmy.connect(**login) as fresh:
        assert fresh.thread_id() != interrupted


# ----------------------------------------------------------------- disable


async def test_disable_restores_asyncmy_and_close_really_closes(
    dropin_off: None, login: dict[str, Any]
) -> None:
    mysqlpool.enable()
    await mysqlpool.disable()
    for (module, name), original in ORIGINALS.items():
        assert getattr(module, name) is original
    conn = await asyncmy.connect(**login)
    assert type(conn) is asyncmy_connection.Connection
    assert await one_value(conn, "SELECT 1") == 1
    conn.close()
    assert ASYNCMY.is_dead(conn)  # closed for real


async def test_waiting_disable_closes_a_holder_still_out_and_it_reads_closed(
    dropin_off: None, login: dict[str, Any]
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await asyncmy.connect(**login)
    pool = only_pool(manager)

    await mysqlpool.disable().wait(timeout=0.1)

    assert pool.stats().open == 0
    assert not conn.connected
    with pytest.raises(asyncmy_errors.InterfaceError):
        await conn.query("SELECT 1")
    conn.close()  # harmless
    assert await conn.ensure_closed() == 0


# ------------------------------------------- asyncmy missing, or too old

# In a child interpreter (enable() connects nothing: no server needed).
LEFT_ALONE = """
import sys
{setup}
import aiomysql
import mysqlpool
aiomysql_connect = aiomysql.connect
mysqlpool.enable()
assert aiomysql.connect is not aiomysql_connect  # aiomysql's drop-in works
{check}
mysqlpool.disable()
print("ok")
"""


@pytest.mark.parametrize(
    ("setup", "check"),
    [
        pytest.param(
            'sys.modules["asyncmy"] = None  # as if not installed',
            'assert "mysqlpool._dropin_asyncmy" not in sys.modules',
            id="not-installed",
        ),
        pytest.param(
            "import asyncmy, asyncmy.version\n"
            'asyncmy.version.__VERSION__ = "0.2.12"  # older than the pools take\n'
            "asyncmy_connect = asyncmy.connect",
            "assert asyncmy.connect is asyncmy_connect",
            id="too-old",
        ),
    ],
)
def test_enable_leaves_asyncmy_alone_when_the_pools_cant_use_it(setup: str, check: str) -> None:
    script = LEFT_ALONE.format(setup=setup, check=check)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.stdout, done.stderr) == ("ok\n", "")
