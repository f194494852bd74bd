"""Drop-in mode (API.md "Drop-in mode"): ``mysqlpool.enable()`` makes plain
aiomysql code run on pools, unchanged; ``mysqlpool.disable()`` undoes it.

The ``LegacyApp`` below is the code a user already has: it knows nothing of
mysqlpool. The tests run it after ``enable()`` and check, on the server, that
it opened few connections and never more than ``pool_size + max_overflow``
at once.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiomysql
import aiomysql.connection
import pymysql
import pytest
import pytest_asyncio

import mysqlpool
from conftest import Admin
from mysqlpool import ConnectParams, PoolManager, parse_dsn
from polling import until
from privateserver import free_port

# The very objects drop-in mode must put back.
ORIGINALS = {
    (aiomysql, "connect"): aiomysql.connect,
    (aiomysql.connection, "connect"): aiomysql.connection.connect,
}

# Suffixed: suites running side by side on one server must not share users.
LEGACY_USER = "mp_dropin_legacy_" + secrets.token_hex(3)
LEGACY_PASSWORD = "legacy-pw"
OTHER_USER = "mp_dropin_other_" + secrets.token_hex(3)
OTHER_PASSWORD = "other-pw"
HOSTS = ("127.0.0.1", "localhost")


# ---------------------------------------------------------------- legacy app
# Plain aiomysql code, as written before mysqlpool existed. Do not "fix" it.


class LegacyApp:
    def __init__(self, host: str, port: int, user: str, password: str, db: str) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.db = db

    async def count_my_connections(self) -> int:
        """Connect, ask the server how many sessions this user has, close."""
        conn = await aiomysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, db=self.db
        )
        try:
            cur = await conn.cursor()
            await cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (self.user,)
            )
            (count,) = await cur.fetchone()
            await cur.execute("SELECT SLEEP(0.01)")
            await cur.close()
        finally:
            conn.close()
        return int(count)

    async def connection_id(self) -> int:
        async with (
            aiomysql.connect(
                host=self.host, port=self.port, user=self.user, password=self.password, db=self.db
            ) as conn,
            conn.cursor() as cur,
        ):
            await cur.execute("SELECT CONNECTION_ID()")
            (value,) = await cur.fetchone()
        return int(value)

    async def current_user(self) -> str:
        # Positional arguments, aiomysql.connection.connect, ensure_closed().
        conn = await aiomysql.connection.connect(
            self.host, self.user, self.password, self.db, self.port
        )
        cur = await conn.cursor()
        await cur.execute("SELECT CURRENT_USER()")
        (value,) = await cur.fetchone()
        await cur.close()
        await conn.ensure_closed()
        return str(value).partition("@")[0]

    async def set_variable_and_read_it_back(self) -> tuple[Any, Any]:
        """What a new connection must not see: the previous one's session."""
        conn = await aiomysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, db=self.db
        )
        cur = await conn.cursor()
        await cur.execute("SELECT @legacy_marker")
        (before,) = await cur.fetchone()
        await cur.execute("SET @legacy_marker = 42")
        await cur.execute("SELECT @legacy_marker")
        (after,) = await cur.fetchone()
        await cur.close()
        conn.close()
        return before, after


# ------------------------------------------------------------------ fixtures


def return_tasks() -> list[asyncio.Task[Any]]:
    """The drop-in mode's returns started by ``conn.close()``, still running."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "mysqlpool drop-in return" and not task.done()
    ]


def patched_attributes() -> dict[tuple[Any, str], Any]:
    return {key: getattr(key[0], key[1]) for key in ORIGINALS}


@pytest_asyncio.fixture
async def dropin_off(admin: Admin) -> AsyncIterator[None]:
    """Drop-in mode is off at the start and at the end of the test, whatever
    it did; nothing it opened is left (no task, no socket).

    Depends on ``admin`` so that the admin connection is made before any
    ``enable()`` (a real one) and closed after ``disable()``.
    """
    assert not mysqlpool.is_enabled()
    try:
        yield
    finally:
        await mysqlpool.disable().wait(timeout=5)
        assert patched_attributes() == ORIGINALS
        for key, original in ORIGINALS.items():
            assert getattr(key[0], key[1]) is original
    current = asyncio.current_task()
    assert {task for task in asyncio.all_tasks() if task is not current} == set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.fixture
def params(mysql_dsn: str) -> ConnectParams:
    return parse_dsn(mysql_dsn)


async def drop_users(admin: Admin) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pymysql.err.Warning)  # "does not exist" notes
        for user in (LEGACY_USER, OTHER_USER):
            for host in HOSTS:
                await admin.scalar(f"DROP USER IF EXISTS '{user}'@'{host}'")


@pytest_asyncio.fixture
async def users(admin: Admin, params: ConnectParams) -> AsyncIterator[None]:
    """Two users with passwords that may use the test database; dropped after."""
    db = params.db or "test"
    await drop_users(admin)  # left over by an interrupted run
    for user, password in ((LEGACY_USER, LEGACY_PASSWORD), (OTHER_USER, OTHER_PASSWORD)):
        for host in HOSTS:
            await admin.scalar(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", password)
            await admin.scalar(f"GRANT SELECT ON `{db}`.* TO '{user}'@'{host}'")
    try:
        yield
    finally:
        await drop_users(admin)


@pytest.fixture
def legacy(params: ConnectParams, users: None) -> LegacyApp:
    return LegacyApp(params.host, params.port, LEGACY_USER, LEGACY_PASSWORD, params.db or "test")


@pytest.fixture
def other(params: ConnectParams, users: None) -> LegacyApp:
    return LegacyApp(params.host, params.port, OTHER_USER, OTHER_PASSWORD, params.db or "test")


def login(app: LegacyApp) -> dict[str, Any]:
    return {
        "host": app.host,
        "port": app.port,
        "user": app.user,
        "password": app.password,
        "db": app.db,
    }


def only_pool(manager: PoolManager) -> Any:
    [pool] = manager.pools.values()
    return pool


async def sessions_of(admin: Admin, user: str) -> int:
    return int(
        await admin.scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", user
        )
    )


# --------------------------------------------------------------------- tests


async def test_legacy_app_under_load_stays_within_pool_limits(
    dropin_off: None, legacy: LegacyApp, admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=2, max_overflow=1)

    counts = await asyncio.gather(*(legacy.count_my_connections() for _ in range(50)))
    ids = await asyncio.gather(*(legacy.connection_id() for _ in range(50)))
    users = await asyncio.gather(*(legacy.current_user() for _ in range(50)))

    # Each call saw its own session among at most pool_size + max_overflow.
    assert max(counts) <= 3
    assert min(counts) >= 1
    assert users == [LEGACY_USER] * 50
    pool = only_pool(manager)
    stats = pool.stats()
    assert stats.acquires == 150
    assert stats.opened < 50  # connections were reused
    assert len(set(ids)) < 50
    assert stats.in_use == 0
    assert stats.idle <= 2
    await until(lambda: not return_tasks(), "returns finished")
    # The overflow one was closed: the server ends its session on the COM_QUIT,
    # a moment after the pool sent it.
    async def at_most_two_sessions() -> bool:
        return await sessions_of(admin, LEGACY_USER) <= 2

    await until(at_most_two_sessions, "the overflow connection's session ended")
    pool.check_invariants()

    await mysqlpool.disable()
    assert pool.closed
    assert pool.stats().open == 0
    await until(lambda: _no_sessions(admin), "server sessions ended")


async def _no_sessions(admin: Admin) -> bool:
    return await sessions_of(admin, LEGACY_USER) == 0


async def test_close_returns_the_connection_instead_of_closing_it(
    dropin_off: None, legacy: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)

    conn = await aiomysql.connect(**login(legacy))
    thread_id = conn.thread_id()
    assert not conn.get_autocommit()  # aiomysql's default, not ConnectParams'
    conn.close()
    assert conn.closed  # as in aiomysql: this object is done with
    await until(lambda: only_pool(manager).stats().idle == 1, "connection back in the pool")

    again = await aiomysql.connect(**login(legacy))
    assert again is not conn  # a new object of its own...
    assert again.thread_id() == thread_id  # ...on the same server session
    assert not again.closed
    again.close()
    again.close()  # a second close is harmless
    await until(lambda: only_pool(manager).stats().idle == 1, "connection back in the pool")
    assert only_pool(manager).stats().opened == 1
    assert only_pool(manager).stats().acquires == 2


async def test_async_with_and_ensure_closed_return_it(dropin_off: None, legacy: LegacyApp) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)

    async with aiomysql.connect(**login(legacy)) as conn:
        first = conn.thread_id()
    pool = only_pool(manager)
    assert pool.stats().idle == 1  # __aexit__ waited for the return
    conn = await aiomysql.connect(**login(legacy))
    assert conn.thread_id() == first
    await conn.ensure_closed()
    assert pool.stats().idle == 1
    assert conn.closed
    assert pool.stats().opened == 1


async def test_connection_used_as_its_own_context_manager_is_returned(
    dropin_off: None, legacy: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)

    async with await aiomysql.connect(**login(legacy)) as conn:
        first = conn.thread_id()
    pool = only_pool(manager)
    assert pool.stats().idle == 1  # Connection.__aexit__ -> ensure_closed() -> returned
    assert conn.closed
    assert await legacy.connection_id() == first
    assert pool.stats().opened == 1


async def test_session_state_does_not_leak_to_the_next_connect(
    dropin_off: None, legacy: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)

    assert await legacy.set_variable_and_read_it_back() == (None, 42)
    await until(lambda: only_pool(manager).stats().idle == 1, "connection back in the pool")
    assert await legacy.set_variable_and_read_it_back() == (None, 42)
    assert only_pool(manager).stats().opened == 1  # the same connection, reset


async def test_disable_restores_the_very_same_objects_and_close_really_closes(
    dropin_off: None, legacy: LegacyApp, admin: Admin
) -> None:
    mysqlpool.enable()
    assert mysqlpool.is_enabled()
    assert aiomysql.connect is not ORIGINALS[(aiomysql, "connect")]
    assert aiomysql.connection.connect is aiomysql.connect

    mysqlpool.disable()  # sync, as API.md shows it

    assert not mysqlpool.is_enabled()
    for (module, name), original in ORIGINALS.items():
        assert getattr(module, name) is original
    conn = await aiomysql.connect(**login(legacy))
    assert type(conn) is aiomysql.Connection
    assert "close" not in vars(conn)
    thread_id = conn.thread_id()
    assert await admin.is_alive(thread_id)
    conn.close()
    assert conn.closed

    async def gone() -> bool:
        return not await admin.is_alive(thread_id)

    await until(gone, "server session ended")


async def test_disable_closes_idle_now_and_checked_out_ones_on_return(
    dropin_off: None, legacy: LegacyApp, admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=2, max_overflow=0)
    held = await aiomysql.connect(**login(legacy))
    idle = await aiomysql.connect(**login(legacy))
    idle_thread = idle.thread_id()
    await idle.ensure_closed()
    pool = only_pool(manager)
    assert pool.stats().idle == 1

    waiting = mysqlpool.disable()

    assert idle.closed  # idle connections are closed at once
    assert pool.closed
    # The holder keeps a working connection...
    async with held.cursor() as cur:
        await cur.execute("SELECT 1")
        assert await cur.fetchone() == (1,)
    with pytest.raises(mysqlpool.PoolClosed):
        await manager.get_pool(**login(legacy))
    # ...which is really closed when it gives it back.
    held.close()
    await waiting
    assert held.closed
    assert pool.stats().open == 0

    async def gone() -> bool:
        return await sessions_of(admin, LEGACY_USER) == 0

    await until(gone, "server sessions ended")
    assert not await admin.is_alive(idle_thread)


async def test_enable_twice_and_disable_twice_are_harmless(dropin_off: None) -> None:
    await mysqlpool.disable()  # without enable
    mysqlpool.disable()

    manager = mysqlpool.enable(pool_size=3)
    patched = aiomysql.connect
    assert mysqlpool.enable(pool_size=3) is manager
    assert aiomysql.connect is patched
    with pytest.raises(RuntimeError, match="disable"):
        mysqlpool.enable(pool_size=4)
    assert mysqlpool.enable(pool_size=3) is manager

    mysqlpool.disable()
    mysqlpool.disable()
    assert aiomysql.connect is ORIGINALS[(aiomysql, "connect")]
    # And on again, with a fresh manager.
    assert mysqlpool.enable(pool_size=4) is not manager


async def test_bad_options_and_arguments_fail_without_patching(dropin_off: None) -> None:
    with pytest.raises(ValueError, match="pool_size"):
        mysqlpool.enable(pool_size=0)
    assert not mysqlpool.is_enabled()
    assert aiomysql.connect is ORIGINALS[(aiomysql, "connect")]

    mysqlpool.enable()
    with pytest.raises(TypeError):
        aiomysql.connect(no_such_option=1)


async def test_different_credentials_get_different_pools(
    dropin_off: None, legacy: LegacyApp, other: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)

    results = await asyncio.gather(*(app.current_user() for app in [legacy, other] * 10))

    assert results == [LEGACY_USER, OTHER_USER] * 10
    assert len(manager.pools) == 2
    by_user = {pool.params.user: pool.stats() for pool in manager.pools.values()}
    assert by_user[LEGACY_USER].acquires == 10
    assert by_user[OTHER_USER].acquires == 10
    assert by_user[LEGACY_USER].opened == 1
    assert by_user[OTHER_USER].opened == 1

    # A wrong password gets its own pool, and fails there.
    wrong = LegacyApp(legacy.host, legacy.port, LEGACY_USER, "wrong", legacy.db)
    with pytest.raises(pymysql.err.OperationalError):
        await wrong.current_user()
    assert len(manager.pools) == 3


async def test_autocommit_given_by_the_caller_is_kept(dropin_off: None, legacy: LegacyApp) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)

    async with aiomysql.connect(**login(legacy), autocommit=True) as conn:
        assert conn.get_autocommit()
    async with aiomysql.connect(**login(legacy)) as conn:
        assert not conn.get_autocommit()
    assert len(manager.pools) == 2


async def test_killed_idle_connection_is_discarded_not_reused(
    dropin_off: None, legacy: LegacyApp, admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await aiomysql.connect(**login(legacy))
    killed = conn.thread_id()
    conn.close()
    pool = only_pool(manager)
    await until(lambda: pool.stats().idle == 1, "connection back in the pool")

    await admin.kill(conn)

    async def gone() -> bool:
        return not await admin.is_alive(killed)

    await until(gone, "server session killed")
    assert await legacy.connection_id() != killed
    assert pool.stats().discarded == 1
    assert pool.stats().opened == 2


async def test_connection_killed_while_checked_out_is_discarded(
    dropin_off: None, legacy: LegacyApp, admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await aiomysql.connect(**login(legacy))
    killed = conn.thread_id()
    await admin.kill(conn)

    cur = await conn.cursor()
    with pytest.raises(pymysql.err.OperationalError):
        await cur.execute("SELECT 1")
    conn.close()  # legacy code closes it in its finally

    pool = only_pool(manager)
    await until(lambda: pool.stats().in_use == 0, "connection returned")
    assert pool.stats().idle == 0
    assert pool.stats().discarded == 1
    assert await legacy.connection_id() != killed


async def test_error_leaving_async_with_discards_a_lost_connection(
    dropin_off: None, legacy: LegacyApp, admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)

    killed: list[int] = []

    async def query_after_kill() -> None:
        async with aiomysql.connect(**login(legacy)) as conn, conn.cursor() as cur:
            killed.append(conn.thread_id())
            await admin.kill(conn)
            await cur.execute("SELECT 1")

    with pytest.raises(pymysql.err.OperationalError):
        await query_after_kill()

    pool = only_pool(manager)
    assert pool.stats().in_use == 0
    assert pool.stats().idle == 0
    assert pool.stats().discarded == 1
    assert await legacy.connection_id() != killed[0]


async def test_query_cancelled_mid_reply_is_never_reused(
    dropin_off: None, legacy: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await aiomysql.connect(**login(legacy))
    interrupted = conn.thread_id()
    cur = await conn.cursor()
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(cur.execute("SELECT SLEEP(2)"), 0.1)
    finally:
        conn.close()
    assert conn.closed  # aiomysql closed it itself, for real

    pool = only_pool(manager)
    await until(lambda: pool.stats().in_use == 0, "slot freed")
    assert pool.stats().idle == 0
    assert pool.stats().discarded == 1
    assert await legacy.connection_id() != interrupted


async def test_returns_from_close_are_tracked_and_awaited_by_disable(
    dropin_off: None, legacy: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=5, max_overflow=0)
    conns = [await aiomysql.connect(**login(legacy)) for _ in range(5)]
    for conn in conns:
        conn.close()
    assert len(return_tasks()) == 5  # one return each, running

    await mysqlpool.disable()

    assert return_tasks() == []
    pool = only_pool(manager)
    assert pool.stats().open == 0
    assert pool.stats().acquires == 5
    assert all(conn.closed for conn in conns)


async def test_aiomysql_giving_up_on_a_connection_closes_it_for_real(
    dropin_off: None, legacy: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    conn = await aiomysql.connect(**login(legacy))
    given_up = conn.thread_id()

    # What aiomysql runs when a read is cancelled mid-reply: its own
    # self.close(), which must not be mistaken for the holder's close().
    conn._close_on_cancel()

    assert conn.closed  # at once, not in a task
    pool = only_pool(manager)
    await until(lambda: pool.stats().in_use == 0, "slot freed")
    assert pool.stats().idle == 0
    assert pool.stats().discarded == 1
    conn.close()  # the holder's own close afterwards is harmless
    assert await legacy.connection_id() != given_up
    assert pool.stats().opened == 2


async def test_waiting_disable_terminates_connections_still_out(
    dropin_off: None, legacy: LegacyApp, admin: Admin
) -> None:
    manager = mysqlpool.enable(pool_size=1, max_overflow=0)
    held = await aiomysql.connect(**login(legacy))
    thread_id = held.thread_id()

    await mysqlpool.disable().wait(timeout=0)

    assert held.closed
    assert only_pool(manager).stats().open == 0
    held.close()  # the holder's close afterwards is harmless

    async def gone() -> bool:
        return not await admin.is_alive(thread_id)

    await until(gone, "server session ended")


async def test_a_host_list_in_the_host_setting_gets_one_multi_host_pool(
    dropin_off: None, legacy: LegacyApp
) -> None:
    manager = mysqlpool.enable(pool_size=2, max_overflow=0)
    nobody = free_port()  # nothing listens there: failover moves on at once
    settings = {**login(legacy), "host": f"127.0.0.1:{nobody},{legacy.host}"}

    for _ in range(3):
        async with aiomysql.connect(**settings) as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")

    pool = only_pool(manager)
    assert pool.params.hosts == [("127.0.0.1", nobody), (legacy.host, legacy.port)]
    hosts = pool.stats().hosts
    assert hosts[f"127.0.0.1:{nobody}"].state == "down"
    assert hosts[f"{legacy.host}:{legacy.port}"].open == 1
