"""What goes back to the queue (API.md "What goes back to the queue").

A returned connection is reset according to ``reset_on_return`` and goes
back only when its protocol state is known: a connection-loss error, a
cancelled or timed-out holder, or an unread streaming result gets it closed
instead. Misuse of ``release()`` gets a ``PoolError`` sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiomysql
import pymysql
import pytest
import pytest_asyncio

import drivers
from conftest import Admin, PoolFactory, scalar
from mysqlpool import PoolError
from polling import pool_tasks, until

ERR = drivers.errors()  # the run's driver's error classes

TABLE = "mp_release_rows_" + secrets.token_hex(3)  # unique: suites may share a server
SERVER_STATUS_IN_TRANS = 0x0001




async def com_rollback(conn: Any) -> int:
    """How many ROLLBACK statements this session has run (session status)."""
    async with conn.cursor() as cur:
        await cur.execute("SHOW SESSION STATUS LIKE 'Com_rollback'")
        row = await cur.fetchone()
    assert row is not None
    return int(row[1])


async def end_query(admin: Admin, thread_id: int) -> None:
    """Stop the server thread of a dropped connection still running its SLEEP."""
    with contextlib.suppress(pymysql.err.MySQLError):  # it may be gone already (admin: aiomysql)
        await admin.scalar(f"KILL {int(thread_id)}")


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


@pytest_asyncio.fixture
async def table(admin: Admin) -> AsyncIterator[str]:
    """An empty InnoDB table for this module, dropped afterwards."""
    await admin.scalar("SET SESSION sql_notes = 0")  # no "Unknown table" note (a Warning)
    await admin.scalar(f"DROP TABLE IF EXISTS {TABLE}")
    await admin.scalar(f"CREATE TABLE {TABLE} (v INT) ENGINE=InnoDB")
    try:
        yield TABLE
    finally:
        await admin.scalar(f"DROP TABLE IF EXISTS {TABLE}")


# ------------------------------------------------------ reset_on_return="rollback"


async def test_open_transaction_is_rolled_back_on_return(
    make_pool: PoolFactory, admin: Admin, table: str
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)

    async def open_transactions(thread_id: int) -> int:
        # InnoDB refreshes this view only when it was not read for 0.1 s:
        # poll it more slowly than that.
        await asyncio.sleep(0.15)
        count = await admin.scalar(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
            thread_id,
        )
        return int(count)

    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        async with conn.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(f"INSERT INTO {table} (v) VALUES (1)")
        assert conn.server_status & SERVER_STATUS_IN_TRANS
        await until(lambda: _equals(open_transactions(thread_id), 1))
        # No COMMIT: the block ends with the transaction open.

    await until(lambda: _equals(open_transactions(thread_id), 0))
    assert await admin.scalar(f"SELECT COUNT(*) FROM {table}") == 0
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert not conn.server_status & SERVER_STATUS_IN_TRANS
        assert await scalar(conn, "SELECT @@in_transaction") == 0
        # Its own uncommitted row would still be visible to it: it is gone.
        assert await scalar(conn, f"SELECT COUNT(*) FROM {table}") == 0
    assert pool.stats().discarded == 0
    pool.check_invariants()


async def test_autocommit_select_costs_no_rollback(make_pool: PoolFactory, table: str) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)  # autocommit on: the default

    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        assert conn.get_autocommit()
        before = await com_rollback(conn)
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert await scalar(conn, f"SELECT COUNT(*) FROM {table}") == 0
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        after = await com_rollback(conn)

    assert after == before
    pool.check_invariants()


async def test_autocommit_off_select_is_rolled_back(make_pool: PoolFactory, table: str) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, autocommit=False)

    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        assert not conn.get_autocommit()
        before = await com_rollback(conn)  # a statement too: rolled back at return (+1)
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert await scalar(conn, f"SELECT COUNT(*) FROM {table}") == 0
        if drivers.name() == "aiomysql":
            # The snapshot is open although the server's in-trans flag is off
            # (asyncmy reads the flag from the result's final OK packet: on).
            assert not conn.server_status & SERVER_STATUS_IN_TRANS
        assert await scalar(conn, "SELECT @@in_transaction") == 1
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        after = await com_rollback(conn)

    assert after - before == 2
    pool.check_invariants()


async def test_autocommit_off_holder_that_ran_nothing_costs_no_rollback(
    make_pool: PoolFactory,
) -> None:
    # With autocommit off, the return rolls back only when a statement ran
    # since the checkout: also after a rollback, and for a connection handed
    # straight from its releaser to a waiter.
    pool = await make_pool(pool_size=1, max_overflow=0, autocommit=False)
    async with pool.acquire() as conn:
        before = await com_rollback(conn)  # a statement: rolled back at return (+1)
    async with pool.acquire():  # nothing ran since that rollback
        pass
    held = await pool.acquire()
    waiter = asyncio.ensure_future(pool.acquire())
    await until(lambda: pool.stats().waiting == 1, "the second acquire waits")
    await pool.release(held)  # ran nothing: handed over as it is
    again = await asyncio.wait_for(waiter, 5)
    assert again is held
    await pool.release(again)  # ran nothing either
    async with pool.acquire() as conn:
        after = await com_rollback(conn)
    assert after - before == 1  # the first holder's only
    pool.check_invariants()


# --------------------------------------------------------- reset_on_return="reset"


async def test_reset_wipes_session_state_and_reruns_init(make_pool: PoolFactory) -> None:
    init_calls: list[int] = []

    async def init(conn: Any) -> None:
        init_calls.append(conn.thread_id())
        async with conn.cursor() as cur:
            await cur.execute("SET @inited = 1")

    pool = await make_pool(
        pool_size=1, max_overflow=0, reset_on_return="reset", charset="utf8mb4", init=init
    )

    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        assert init_calls == [thread_id]
        default_sql_mode = await scalar(conn, "SELECT @@SESSION.sql_mode")
        assert default_sql_mode != ""
        async with conn.cursor() as cur:
            await cur.execute("SET @x = 1, @inited = NULL")
            await cur.execute("CREATE TEMPORARY TABLE mp_release_tmp (i INT)")
            await cur.execute("USE information_schema")
            await cur.execute("SET SESSION sql_mode = ''")
            await cur.execute("SET NAMES latin1")
            await cur.execute("SET autocommit = 0")
        # Each change really took effect on this session.
        assert await scalar(conn, "SELECT @x") == 1
        assert await scalar(conn, "SELECT COUNT(*) FROM test.mp_release_tmp") == 0
        assert await scalar(conn, "SELECT DATABASE()") == "information_schema"
        assert await scalar(conn, "SELECT @@SESSION.sql_mode") == ""
        assert await scalar(conn, "SELECT @@character_set_client") == "latin1"
        assert await scalar(conn, "SELECT @@autocommit") == 0

    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert init_calls == [thread_id, thread_id]  # once at open, once after the reset
        assert await scalar(conn, "SELECT @x") is None
        assert await scalar(conn, "SELECT @inited") == 1
        assert await scalar(conn, "SELECT DATABASE()") == "test"
        assert await scalar(conn, "SELECT @@SESSION.sql_mode") == default_sql_mode
        assert await scalar(conn, "SELECT @@character_set_client") == "utf8mb4"
        assert await scalar(conn, "SELECT @@autocommit") == 1
        assert conn.get_autocommit()
        with pytest.raises(ERR.ProgrammingError) as excinfo:
            await scalar(conn, "SELECT COUNT(*) FROM test.mp_release_tmp")
        assert excinfo.value.args[0] == 1146  # no such table: the temporary table is gone
    assert init_calls == [thread_id] * 3
    assert pool.stats().discarded == 0
    pool.check_invariants()


@pytest.mark.parametrize(
    ("change", "setting", "changed", "configured"),
    [
        ("autocommit", "@@autocommit", 0, 1),
        ("charset", "@@character_set_client", "latin1", "utf8mb4"),
    ],
)
async def test_reset_undoes_changes_made_through_the_driver(
    make_pool: PoolFactory, change: str, setting: str, changed: Any, configured: Any
) -> None:
    """``conn.autocommit(False)`` and ``conn.set_charset()`` change the session too."""
    if change == "charset" and drivers.name() == "asyncmy":
        pytest.skip("asyncmy's own set_charset() fails (it reads Charset._encoding, which is gone)")
    pool = await make_pool(pool_size=1, max_overflow=0, reset_on_return="reset", charset="utf8mb4")

    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        assert await scalar(conn, f"SELECT {setting}") == configured
        if change == "autocommit":
            await conn.autocommit(False)
        else:
            await conn.set_charset("latin1")
        assert await scalar(conn, f"SELECT {setting}") == changed

    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert await scalar(conn, f"SELECT {setting}") == configured
    pool.check_invariants()


async def test_no_reset_leaves_session_state_to_the_next_user(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, reset_on_return=None)

    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        async with conn.cursor() as cur:
            await cur.execute("SET @x = 1")

    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert await scalar(conn, "SELECT @x") == 1
    pool.check_invariants()


# ------------------------------------------------------------- unknown state


async def test_connection_loss_in_the_block_discards_the_connection(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    seen: list[Any] = []

    async def use_killed_connection() -> None:
        async with pool.acquire() as conn:
            seen.append(conn)
            await admin.kill(conn)
            await scalar(conn, "SELECT 1")

    with pytest.raises(ERR.OperationalError) as excinfo:
        await use_killed_connection()
    assert excinfo.value.args[0] in (2006, 2013)
    [conn] = seen
    thread_id = conn.thread_id()

    stats = pool.stats()
    assert (stats.discarded, stats.idle, stats.in_use, stats.open) == (1, 0, 0, 0)
    assert drivers.is_closed(conn)
    pool.check_invariants()
    async with pool.acquire() as conn:
        assert conn.thread_id() != thread_id
        assert await scalar(conn, "SELECT 1") == 1
    pool.check_invariants()


async def test_sql_error_in_the_block_keeps_the_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    seen: list[int] = []

    async def run_bad_sql() -> None:
        async with pool.acquire() as conn:
            seen.append(conn.thread_id())
            await scalar(conn, "SELEKT 1")

    with pytest.raises(ERR.ProgrammingError) as excinfo:
        await run_bad_sql()
    assert excinfo.value.args[0] == 1064
    [thread_id] = seen

    assert pool.stats().discarded == 0
    assert len(pool) == 1
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert await scalar(conn, "SELECT 1") == 1
    pool.check_invariants()


async def test_holder_cancelled_mid_query_discards_the_connection(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    acquired: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def holder() -> None:
        async with pool.acquire() as conn:
            acquired.set_result(conn.thread_id())
            await scalar(conn, "SELECT SLEEP(5)")

    task = asyncio.create_task(holder())
    thread_id = await acquired

    async def sleeping() -> bool:
        found = await admin.scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE ID = %s AND INFO LIKE 'SELECT SLEEP%%'",
            thread_id,
        )
        return bool(found)

    await until(sleeping)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await end_query(admin, thread_id)

    stats = pool.stats()
    assert (stats.discarded, stats.idle, stats.in_use, stats.open) == (1, 0, 0, 0)
    pool.check_invariants()
    async with pool.acquire() as conn:
        assert conn.thread_id() != thread_id
        assert await scalar(conn, "SELECT 1") == 1
    assert pool.stats().in_use == 0
    pool.check_invariants()


@pytest.mark.parametrize("caught", [False, True], ids=["timeout-propagates", "timeout-caught"])
async def test_holder_timed_out_mid_query_discards_the_connection(
    make_pool: PoolFactory, admin: Admin, caught: bool
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)

    seen: list[int] = []

    async def run_into_timeout() -> None:
        async with pool.acquire() as conn:
            seen.append(conn.thread_id())
            cur = await drivers.open_cursor(conn)
            try:
                await asyncio.wait_for(cur.execute("SELECT SLEEP(5)"), 0.2)
            except asyncio.TimeoutError:  # not the builtin on Python 3.10
                if not caught:
                    raise

    if caught:
        await run_into_timeout()
    else:
        with pytest.raises(asyncio.TimeoutError):
            await run_into_timeout()
    [thread_id] = seen
    await end_query(admin, thread_id)

    stats = pool.stats()
    assert (stats.discarded, stats.idle, stats.in_use, stats.open) == (1, 0, 0, 0)
    pool.check_invariants()
    async with pool.acquire() as conn:
        assert conn.thread_id() != thread_id
        assert await scalar(conn, "SELECT 1") == 1
    pool.check_invariants()


async def test_unread_streaming_result_discards_the_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    many_rows = (
        "WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000)"
        " SELECT n FROM s"
    )

    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        cur = await drivers.open_cursor(conn, drivers.cursor_class("SSCursor"))
        await cur.execute(many_rows)
        assert await cur.fetchone() == (1,)
        # Leave with 999 rows unread and the cursor open.

    assert pool.stats().discarded == 1
    assert pool.stats().open == 0
    async with pool.acquire() as conn:
        assert conn.thread_id() != thread_id
        assert await scalar(conn, "SELECT 4242") == 4242
    pool.check_invariants()


# ------------------------------------------------------------------ misuse


async def test_releasing_twice_raises(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    conn = await pool.acquire()
    await pool.release(conn)

    with pytest.raises(PoolError, match="already released"):
        await pool.release(conn)

    stats = pool.stats()
    assert (stats.idle, stats.in_use, stats.open, stats.discarded) == (1, 0, 1, 0)
    pool.check_invariants()
    async with pool.acquire() as again:
        assert again is conn
        assert await scalar(again, "SELECT 1") == 1


async def test_releasing_twice_while_the_first_release_runs_raises(
    make_pool: PoolFactory, table: str
) -> None:
    coming_back = asyncio.Event()
    pool = await make_pool(
        pool_size=1, max_overflow=0, on_checkin=lambda conn: coming_back.set()
    )
    conn = await pool.acquire()
    async with conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute(f"INSERT INTO {table} (v) VALUES (1)")
    first = asyncio.create_task(pool.release(conn))  # rolls back: takes a round trip
    # Wait until it has taken the connection back, mid-rollback.
    await asyncio.wait_for(coming_back.wait(), 5)
    assert not first.done()
    assert pool.stats().in_use == 1  # not back in the queue yet

    with pytest.raises(PoolError, match="already released"):
        await pool.release(conn)
    await first

    stats = pool.stats()
    assert (stats.idle, stats.in_use, stats.open, stats.discarded) == (1, 0, 1, 0)
    pool.check_invariants()


async def test_releasing_a_connection_from_another_pool_raises(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    other = await make_pool(pool_size=1, max_overflow=0)
    async with pool.acquire():
        pass  # one idle connection in `pool`
    conn = await other.acquire()

    with pytest.raises(PoolError, match="not acquired from"):
        await pool.release(conn)

    assert (pool.stats().idle, pool.stats().in_use, pool.stats().open) == (1, 0, 1)
    assert (other.stats().idle, other.stats().in_use) == (0, 1)
    assert not drivers.is_closed(conn)
    await other.release(conn)
    assert other.stats().idle == 1
    pool.check_invariants()
    other.check_invariants()


async def test_releasing_a_plain_connection_raises_without_the_password(
    make_pool: PoolFactory, mysql_connect_kwargs: dict[str, Any]
) -> None:
    # This pool never connects (min_size=0): only its name carries the password.
    secret = "s3cret-Pw-for-release"
    pool = await make_pool(password=secret)
    plain = await aiomysql.connect(**mysql_connect_kwargs)
    try:
        with pytest.raises(PoolError) as excinfo:
            await pool.release(plain)
        assert secret not in str(excinfo.value)
        assert secret not in repr(excinfo.value)
        assert "not acquired from" in str(excinfo.value)
        assert not plain.closed
        assert await scalar(plain, "SELECT 1") == 1
    finally:
        plain.close()
    assert pool.stats().open == 0
    pool.check_invariants()


# ------------------------------------------------------------- KILL QUERY


async def running(admin: Admin, thread_id: int) -> bool:
    """Whether the server still runs a statement for this session."""
    return bool(
        await admin.scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE ID = %s AND INFO LIKE 'SELECT SLEEP%%'",
            thread_id,
        )
    )


@pytest.mark.parametrize("kill", [True, False], ids=["kill_query_on_cancel", "off"])
async def test_cancelled_holder_has_its_query_killed_on_the_server(
    make_pool: PoolFactory, admin: Admin, kill: bool
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, kill_query_on_cancel=kill)
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def holder() -> None:
        async with pool.acquire() as conn:
            started.set_result(conn.thread_id())
            await scalar(conn, "SELECT SLEEP(30)")

    task = asyncio.create_task(holder())
    thread_id = await started
    await until(lambda: running(admin, thread_id), "the SLEEP running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    try:
        if kill:
            # The server stops the statement within moments, not 30 s.
            await until(
                lambda: _not(running(admin, thread_id)), "the query killed", timeout=5
            )
            assert pool.stats().discarded == 1
        else:
            # Nobody told the server: it is still sleeping for a reader that left.
            assert await running(admin, thread_id)
    finally:
        await end_query(admin, thread_id)
    await pool.close()
    assert pool_tasks(pool) == []  # the KILL task finished and was awaited


async def _not(result: Awaitable[bool]) -> bool:
    return not await result


async def test_reset_releases_locks_prepared_statements_and_time_zone(
    make_pool: PoolFactory, admin: Admin
) -> None:
    pool = await make_pool(
        pool_size=1,
        max_overflow=0,
        reset_on_return="reset",
        init_command="SET SESSION wait_timeout = 1234",
    )
    async with pool.acquire() as conn:
        thread_id = conn.thread_id()
        assert await scalar(conn, "SELECT GET_LOCK('mysqlpool_reset_lock', 0)") == 1
        await scalar(conn, "SET time_zone = '+05:00'")
        await scalar(conn, "PREPARE mysqlpool_stmt FROM 'SELECT 1'")
        await scalar(conn, "SET SESSION wait_timeout = 99")
    # Another session can take the lock: the reset released it.
    assert await admin.scalar("SELECT IS_FREE_LOCK('mysqlpool_reset_lock')") == 1
    async with pool.acquire() as conn:
        assert conn.thread_id() == thread_id
        assert await scalar(conn, "SELECT @@session.time_zone = @@global.time_zone") == 1
        with pytest.raises(ERR.OperationalError):  # 1243: unknown prepared statement
            await scalar(conn, "EXECUTE mysqlpool_stmt")
        # init_command ran again after the reset.
        assert await scalar(conn, "SELECT @@session.wait_timeout") == 1234
