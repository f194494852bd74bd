"""Drop-in mode behaves like plain aiomysql (issue 13).

Each test runs one body of ordinary aiomysql code twice, first with plain
aiomysql, then under ``mysqlpool.enable()``, and compares what the code
saw. The code knows nothing of mysqlpool; the pools are small
(``pool_size=1``) so the second ``connect()`` reuses the first one's
connection, where a leftover would show.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomysql
import pymysql
import pytest
import pytest_asyncio
from pymysql.constants import CLIENT

import mysqlpool
from conftest import Admin
from mysqlpool import ConnectParams, PoolStats, parse_dsn
from polling import until

Body = Callable[[dict[str, Any]], Awaitable[Any]]


@pytest.fixture
def kw(mysql_dsn: str) -> dict[str, Any]:
    """Plain ``aiomysql.connect`` keywords for the test server."""
    p: ConnectParams = parse_dsn(mysql_dsn)
    return {"host": p.host, "port": p.port, "user": p.user, "password": p.password, "db": p.db}


class SideBySide:
    """Runs a body plain, then under drop-in mode; keeps the pools' stats."""

    def __init__(self) -> None:
        self.stats: list[PoolStats] = []

    async def __call__(self, body: Body, kw: dict[str, Any], **options: Any) -> tuple[Any, Any]:
        """``plain, pooled = await side_by_side(body, kw, **enable_options)``."""
        plain = await body(kw)
        options.setdefault("pool_size", 1)
        options.setdefault("max_overflow", 0)
        manager = mysqlpool.enable(**options)
        try:
            pooled = await body(kw)
            await until(lambda: not return_tasks(), "returns finished")
            self.stats = [pool.stats() for pool in manager.pools.values()]
        finally:
            await mysqlpool.disable().wait(timeout=5)
        return plain, pooled


def return_tasks() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "mysqlpool drop-in return" and not task.done()
    ]


@pytest_asyncio.fixture
async def side_by_side() -> AsyncIterator[SideBySide]:
    assert not mysqlpool.is_enabled()
    try:
        yield SideBySide()
    finally:
        await mysqlpool.disable().wait(timeout=5)


async def select_one(conn: Any) -> Any:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        return await cur.fetchone()


# ------------------------------------------------------ 1. a second close


async def test_a_stale_second_close_never_touches_the_next_holder(
    side_by_side: SideBySide, kw: dict[str, Any]
) -> None:
    async def body(kw: dict[str, Any]) -> Any:
        a = await aiomysql.connect(**kw)
        await a.ensure_closed()
        b = await aiomysql.connect(**kw)  # the pool's only connection, again
        a.close()  # a stray second close, through the first holder's reference
        row = await select_one(b)
        await a.ensure_closed()  # and another one
        row_after = await select_one(b)
        await b.ensure_closed()
        return row, row_after, a.closed, b.closed

    plain, pooled = await side_by_side(body, kw)
    assert plain == pooled == ((1,), (1,), True, True)


async def test_closing_twice_never_cuts_the_reset_short(
    side_by_side: SideBySide, kw: dict[str, Any]
) -> None:
    async def body(kw: dict[str, Any]) -> Any:
        seen = []
        for _ in range(3):
            conn = await aiomysql.connect(**kw)
            try:
                async with conn.cursor() as cur:
                    await cur.execute("SELECT @marker")
                    (before,) = await cur.fetchone()
                    await cur.execute("SET @marker = 1")
                conn.close()
                await asyncio.sleep(0)  # other work, while a return would run
                seen.append(before)
            finally:
                conn.close()  # closed again, by the code's own cleanup
        async with aiomysql.connect(**kw) as conn:
            seen.append(await select_one(conn))
            await conn.ensure_closed()  # and the context manager closes it again
        return seen

    plain, pooled = await side_by_side(body, kw)
    assert plain == pooled == [None, None, None, (1,)]
    [stats] = side_by_side.stats
    assert (stats.opened, stats.discarded) == (1, 0)  # one connection, reset each time


async def test_a_returned_connection_refuses_statements_as_a_closed_one_does(
    side_by_side: SideBySide, kw: dict[str, Any]
) -> None:
    async def body(kw: dict[str, Any]) -> Any:
        conn = await aiomysql.connect(**kw)
        cur = await conn.cursor()
        await conn.ensure_closed()
        with pytest.raises(aiomysql.InterfaceError) as caught:
            await cur.execute("SELECT 1")
        return conn.closed, str(caught.value)

    plain, pooled = await side_by_side(body, kw)
    assert plain == pooled == (True, "(0, 'Not connected')")


# ------------------------------------ 2. no trace of the pool's statements


async def last_statement(conn: Any) -> tuple[Any, Any, Any]:
    """What code reads of its connection's last statement, before running any."""
    insert_id, affected = conn.insert_id(), conn.affected_rows()
    async with conn.cursor() as cur:
        await cur.execute("SHOW WARNINGS")
        warnings = await cur.fetchall()
    return insert_id, affected, warnings


@pytest.mark.parametrize("reset_on_return", ["reset", "rollback"])
async def test_right_after_connect_no_statement_shows(
    side_by_side: SideBySide, kw: dict[str, Any], reset_on_return: str
) -> None:
    async def body(kw: dict[str, Any]) -> Any:
        seen: list[Any] = []
        for autocommit in (False, True, False):
            conn = await aiomysql.connect(**kw, autocommit=autocommit)
            seen.append(await last_statement(conn))
            async with conn.cursor() as cur:
                await cur.execute("CREATE TEMPORARY TABLE t_ids (a INT AUTO_INCREMENT PRIMARY KEY)")
                await cur.execute("INSERT INTO t_ids VALUES (NULL), (NULL)")
                seen.append((conn.insert_id(), conn.affected_rows()))
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    await cur.execute("SELECT CAST('x' AS INT)")  # a warning...
                seen.append([str(w.message) for w in caught])
                await cur.execute("DROP TEMPORARY TABLE t_ids")
            await conn.ensure_closed()  # ...the next connect must not see
        return seen

    # recycle="auto" (the default) reads wait_timeout on the new connection;
    # pre_ping=0 pings it at every checkout.
    plain, pooled = await side_by_side(body, kw, reset_on_return=reset_on_return, pre_ping=0.0)
    assert plain == pooled
    assert plain[0] == (0, 0, ())


# ----------------------------- 3. a reset restores what connect() opened


async def session_of(conn: Any) -> tuple[Any, ...]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT DATABASE(), @@character_set_client")
        row = await cur.fetchone()
    return (*row, conn.charset)


async def test_settings_from_an_option_file_are_restored_on_reuse(
    side_by_side: SideBySide, kw: dict[str, Any], option_file: str, databases: tuple[str, str]
) -> None:
    login = {key: value for key, value in kw.items() if key != "db"}

    async def body(kw: dict[str, Any]) -> Any:
        seen = []
        for _ in range(2):
            conn = await aiomysql.connect(**login, read_default_file=option_file)
            seen.append(await session_of(conn))
            await conn.select_db(databases[1])
            await conn.set_charset("utf8mb4")
            await conn.ensure_closed()
        return seen

    plain, pooled = await side_by_side(body, kw)
    assert plain == pooled == [(databases[0], "latin1", "latin1")] * 2
    [stats] = side_by_side.stats
    assert stats.opened == 1


# ------------------------------------------- 4. an error raised mid-reply


async def refused_load_data_local(conn: Any) -> None:
    """``LOAD DATA LOCAL`` on a connection that announced LOCAL_FILES but
    refuses to send the file (``local_infile=False``): aiomysql raises
    RuntimeError part-way through the reply, the server waits for data."""
    async with conn.cursor() as cur:
        await cur.execute("CREATE TEMPORARY TABLE IF NOT EXISTS t_infile (a INT)")
        await cur.execute("LOAD DATA LOCAL INFILE '/nonexistent' INTO TABLE t_infile")


async def test_an_error_raised_mid_reply_never_stalls_the_next_connect(
    side_by_side: SideBySide, kw: dict[str, Any]
) -> None:
    kw = {**kw, "client_flag": CLIENT.LOCAL_FILES}

    async def close_in_finally(kw: dict[str, Any]) -> None:
        conn = await aiomysql.connect(**kw)
        try:
            await refused_load_data_local(conn)
        finally:
            conn.close()

    async def leave_async_with(kw: dict[str, Any]) -> None:
        async with aiomysql.connect(**kw) as conn:
            await refused_load_data_local(conn)

    async def body(kw: dict[str, Any]) -> Any:
        seen = []
        for fails in (close_in_finally, leave_async_with):
            with pytest.raises(RuntimeError) as caught:
                await fails(kw)
            seen.append(str(caught.value))
            # With the pool's only connection stuck in a reset, this waits.
            async with aiomysql.connect(**kw) as conn:
                seen.append(await select_one(conn))
        return seen

    plain, pooled = await side_by_side(body, kw, timeout=5)
    refused = "**WARN**: Received LOAD_LOCAL packet but local_infile option is false."
    assert plain == pooled == [refused, (1,)] * 2
    [stats] = side_by_side.stats
    assert stats.discarded == 2


# ------------------------------------------------- 5. TLS not offered


@pytest.fixture
async def no_tls(admin: Admin) -> ssl.SSLContext:
    """A TLS context for the test server, which must offer no TLS."""
    if await admin.scalar("SELECT @@have_ssl") == "YES":
        pytest.skip("the test server offers TLS; these tests need one that doesn't")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def cipher_of(kw: dict[str, Any]) -> Any:
    async with aiomysql.connect(**kw) as conn, conn.cursor() as cur:
        await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return await cur.fetchone()


async def test_tls_given_but_not_offered_is_refused_unless_plaintext_is_allowed(
    side_by_side: SideBySide,
    kw: dict[str, Any],
    no_tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kw = {**kw, "ssl": no_tls}
    assert await cipher_of(kw) == ("Ssl_cipher", "")  # plain aiomysql: in clear, silently

    mysqlpool.enable()
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await cipher_of(kw)
    assert refused.value.args[0] == 2026
    assert "ssl_allow_plaintext=True" in refused.value.args[1]
    await mysqlpool.disable()

    plain, pooled = await side_by_side(cipher_of, kw, ssl_allow_plaintext=True)
    assert plain == pooled == ("Ssl_cipher", "")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ssl_allow_plaintext=True" in message for message in warned)
    assert any("offers no TLS; connected in plaintext" in message for message in warned)
