"""Drop-in mode behaves like plain aiomysql (issue 13).

Each test runs one body of ordinary aiomysql code twice, first with plain
aiomysql, then under ``mysqlpool.enable()``, and compares what the code
saw. The code knows nothing of mysqlpool; the pools are small
(``pool_size=1``) so the second ``connect()`` reuses the first one's
connection, where a leftover would show.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
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


# ------------------------------------ a body of ordinary aiomysql usage
# Each body is code as an aiomysql user writes it; what it returns is what
# the code saw. Under drop-in mode it must see exactly what it sees plain.


@pytest_asyncio.fixture
async def names(admin: Admin) -> AsyncIterator[dict[str, str]]:
    """A table and a procedure of the test's own, dropped after it."""
    token = secrets.token_hex(3)
    made = {"table": f"mp_parity_t_{token}", "procedure": f"mp_parity_p_{token}"}
    await admin.scalar(
        f"CREATE TABLE {made['table']} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))"
        " ENGINE=InnoDB"
    )
    await admin.scalar(
        f"CREATE PROCEDURE {made['procedure']}(IN a INT, OUT doubled INT)"
        " BEGIN SELECT a AS first; SELECT a + 1 AS second; SET doubled = a * 2; END"
    )
    try:
        yield made
    finally:
        await admin.scalar(f"DROP PROCEDURE IF EXISTS {made['procedure']}")
        await admin.scalar(f"DROP TABLE IF EXISTS {made['table']}")


def connection_facts(conn: Any) -> tuple[Any, ...]:
    """What code may read off a connection without a statement (no thread id:
    plain connections are new ones)."""
    return (
        conn.closed,
        conn.db,
        conn.charset,
        conn.encoding,
        conn.host,
        conn.port,
        conn.user,
        conn.get_autocommit(),
        conn.insert_id(),
        conn.affected_rows(),
        conn.escape("it's"),
        conn.literal(1.5),
        # A subclass under drop-in mode (the pool's), so not type(conn).
        isinstance(conn, aiomysql.Connection),
    )


async def every_kind_of_cursor(kw: dict[str, Any], names: dict[str, str]) -> Any:
    seen: list[Any] = []
    query = "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y' UNION ALL SELECT 3, 'z'"
    conn = await aiomysql.connect(**kw)
    seen.append(connection_facts(conn))
    for cls in (aiomysql.Cursor, aiomysql.DictCursor, aiomysql.SSCursor, aiomysql.SSDictCursor):
        async with conn.cursor(cls) as cur:
            await cur.execute(query)
            seen.append((cls.__name__, [d[0] for d in cur.description]))
            seen.append(await cur.fetchone())
            seen.append(await cur.fetchmany(1))
            seen.append(await cur.fetchall())
            seen.append(cur.rowcount if cls in (aiomysql.Cursor, aiomysql.DictCursor) else None)
    async with conn.cursor() as cur:
        await cur.execute("SELECT %s, %s", (1, "two"))
        seen.append([row async for row in cur])
        seen.append(cur.mogrify("SELECT %(x)s", {"x": "it's"}))
    conn.close()
    seen.append(connection_facts(conn))
    # cursorclass given to connect()
    dicts = {**kw, "cursorclass": aiomysql.DictCursor}
    async with aiomysql.connect(**dicts) as conn, conn.cursor() as cur:
        await cur.execute(query)
        seen.append(await cur.fetchall())
    return seen


async def writes_and_their_counts(kw: dict[str, Any], names: dict[str, str]) -> Any:
    table = names["table"]
    seen: list[Any] = []
    async with aiomysql.connect(**kw, autocommit=True) as conn:
        seen.append(connection_facts(conn))
        async with conn.cursor() as cur:
            await cur.execute(f"TRUNCATE TABLE {table}")  # ids from 1, whichever run
            seen.append(await cur.executemany(
                f"INSERT INTO {table} (v) VALUES (%s)", [("a",), ("b",), ("c",)]
            ))
            seen.append((cur.rowcount, cur.lastrowid, conn.insert_id(), conn.affected_rows()))
            seen.append(await cur.execute(f"UPDATE {table} SET v = 'B' WHERE v = 'b'"))
            seen.append((cur.rowcount, conn.affected_rows()))
            seen.append(await cur.execute(f"UPDATE {table} SET v = 'B' WHERE v = 'B'"))
            seen.append(conn.affected_rows())  # matched, not changed
            await cur.execute(f"SELECT v FROM {table} ORDER BY id")
            seen.append(await cur.fetchall())
            await cur.execute(f"DELETE FROM {table}")
            seen.append(cur.rowcount)
    return seen


async def procedures_and_several_results(kw: dict[str, Any], names: dict[str, str]) -> Any:
    seen: list[Any] = []
    async with aiomysql.connect(**kw) as conn, conn.cursor() as cur:
        seen.append(await cur.callproc(names["procedure"], (20, 0)))
        seen.append(await cur.fetchall())
        while await cur.nextset():
            seen.append(await cur.fetchall())
        await cur.execute(f"SELECT @_{names['procedure']}_1")
        seen.append(await cur.fetchone())
        await cur.execute("SELECT 1; SELECT 2, 3")
        seen.append(await cur.fetchall())
        seen.append(await cur.nextset())
        seen.append(await cur.fetchall())
        seen.append(await cur.nextset())
    return seen


async def streaming(kw: dict[str, Any], names: dict[str, str]) -> Any:
    seen: list[Any] = []
    async with aiomysql.connect(**kw) as conn, conn.cursor(aiomysql.SSCursor) as cur:
        await cur.execute("SELECT seq FROM seq_1_to_5000")
        total = count = 0
        while (row := await cur.fetchone()) is not None:
            total += row[0]
            count += 1
        seen.append((count, total))
    # Code that stops reading half-way and closes the connection.
    conn = await aiomysql.connect(**kw)
    cur = await conn.cursor(aiomysql.SSCursor)
    await cur.execute("SELECT seq FROM seq_1_to_5000")
    seen.append(await cur.fetchmany(3))
    conn.close()
    async with aiomysql.connect(**kw) as conn:
        seen.append(await select_one(conn))
    return seen


async def load_data_local(kw: dict[str, Any], names: dict[str, str], path: str) -> Any:
    table = names["table"]
    seen: list[Any] = []
    local = {**kw, "local_infile": True, "autocommit": True}
    async with aiomysql.connect(**local) as conn, conn.cursor() as cur:
        await cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} (v)", (path,))
        seen.append((cur.rowcount, conn.affected_rows()))
        await cur.execute(f"SELECT v FROM {table} ORDER BY id")
        seen.append(await cur.fetchall())
        await cur.execute(f"DELETE FROM {table}")
    return seen


async def session_changes_stay_with_their_connect(
    kw: dict[str, Any], names: dict[str, str]
) -> Any:
    seen: list[Any] = []
    session = "SELECT DATABASE(), @@character_set_client, @@autocommit, @v, @@session.time_zone"
    for _ in range(2):
        conn = await aiomysql.connect(**kw)
        async with conn.cursor() as cur:
            await cur.execute(session)
            seen.append(await cur.fetchone())
            seen.append(connection_facts(conn))
            await conn.select_db("information_schema")
            await conn.set_charset("latin1")
            await conn.autocommit(True)
            seen.append((conn.get_autocommit(), conn.charset, conn.encoding))
            await cur.execute("SET @v = 7, time_zone = '+03:00'")
            # Fails the second time round if the first one's is still there.
            await cur.execute(f"CREATE TEMPORARY TABLE {kw['db']}.t_session (a INT)")
            await cur.execute(session)
            seen.append(await cur.fetchone())
        await conn.ensure_closed()
    return seen


async def transactions(kw: dict[str, Any], names: dict[str, str]) -> Any:
    table = names["table"]
    seen: list[Any] = []

    async def visible(v: str) -> Any:
        async with aiomysql.connect(**kw, autocommit=True) as other, other.cursor() as cur:
            await cur.execute(f"SELECT COUNT(*) FROM {table} WHERE v = %s", (v,))
            return await cur.fetchone()

    conn = await aiomysql.connect(**kw)
    cur = await conn.cursor()
    await conn.begin()
    await cur.execute(f"INSERT INTO {table} (v) VALUES ('rolled back')")
    await conn.rollback()
    await conn.begin()
    await cur.execute(f"INSERT INTO {table} (v) VALUES ('committed')")
    await conn.commit()
    await cur.execute(f"INSERT INTO {table} (v) VALUES ('left open')")
    seen.append(conn.get_transaction_status())
    await cur.close()
    conn.close()  # closed with a transaction open: it never commits
    seen.append(await visible("rolled back"))
    seen.append(await visible("committed"))
    seen.append(await visible("left open"))
    async with aiomysql.connect(**kw) as conn:
        seen.append(conn.get_transaction_status())
        await conn.autocommit(True)
        async with conn.cursor() as cur:
            await cur.execute(f"INSERT INTO {table} (v) VALUES ('autocommitted')")
    seen.append(await visible("autocommitted"))
    async with aiomysql.connect(**kw, autocommit=True) as conn, conn.cursor() as cur:
        await cur.execute(f"DELETE FROM {table}")
    return seen


async def ping_and_warnings(kw: dict[str, Any], names: dict[str, str]) -> Any:
    seen: list[Any] = []
    async with aiomysql.connect(**kw) as conn:
        seen.append(await conn.ping())
        seen.append(await conn.ping(reconnect=False))
        async with conn.cursor() as cur:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await cur.execute("SELECT CAST('1x' AS INT)")
            seen.append([(w.category.__name__, str(w.message)) for w in caught])
            seen.append(await cur.fetchall())
            seen.append(await conn.show_warnings())
    async with aiomysql.connect(**kw) as conn:
        seen.append(await conn.show_warnings())
        seen.append(connection_facts(conn))
    return seen


async def errors_inside_async_with(kw: dict[str, Any], names: dict[str, str]) -> Any:
    seen: list[Any] = []
    for error in (ValueError("the code's own"), None):
        try:
            async with aiomysql.connect(**kw) as conn:
                async with conn.cursor() as cur:
                    await cur.execute("SET @in_with = 1")
                if error is not None:
                    raise error
                await select_one(conn)
                async with conn.cursor() as cur:
                    await cur.execute("SELECT * FROM no_such_table_parity")
        except (ValueError, pymysql.err.ProgrammingError) as exc:
            seen.append((type(exc).__name__, str(exc)))
        seen.append(conn.closed)

    async def divide_by_zero(conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @in_with")
            seen.append(await cur.fetchone())
            seen.append(1 / 0)

    try:
        async with await aiomysql.connect(**kw) as conn:  # the connection's own async with
            await divide_by_zero(conn)
    except ZeroDivisionError as exc:
        seen.append(str(exc))
    seen.append(conn.closed)
    async with aiomysql.connect(**kw) as conn, conn.cursor() as cur:
        await cur.execute("SELECT @in_with")
        seen.append(await cur.fetchone())
    return seen


async def option_files(kw: dict[str, Any], names: dict[str, str], path: str) -> Any:
    login = {key: value for key, value in kw.items() if key != "db"}
    seen: list[Any] = []
    for group in (None, "mysqlpool_parity"):
        async with aiomysql.connect(
            **login, read_default_file=path, read_default_group=group
        ) as conn:
            seen.append(await session_of(conn))
            seen.append(connection_facts(conn))
            await conn.select_db("information_schema")
    return seen


async def double_close(kw: dict[str, Any], names: dict[str, str]) -> Any:
    seen: list[Any] = []
    conn = await aiomysql.connect(**kw)
    conn.close()
    conn.close()
    seen.append(conn.closed)
    conn = await aiomysql.connect(**kw)
    await conn.ensure_closed()
    await conn.ensure_closed()
    conn.close()
    seen.append(conn.closed)
    async with aiomysql.connect(**kw) as conn:
        await conn.ensure_closed()
    seen.append(conn.closed)
    async with aiomysql.connect(**kw) as conn:
        seen.append(await select_one(conn))
    return seen


USAGE = [
    every_kind_of_cursor,
    writes_and_their_counts,
    procedures_and_several_results,
    streaming,
    session_changes_stay_with_their_connect,
    transactions,
    ping_and_warnings,
    errors_inside_async_with,
    double_close,
]


@pytest.mark.parametrize("usage", USAGE, ids=[usage.__name__ for usage in USAGE])
async def test_ordinary_usage_sees_the_same_results(
    side_by_side: SideBySide,
    kw: dict[str, Any],
    names: dict[str, str],
    usage: Callable[[dict[str, Any], dict[str, str]], Awaitable[Any]],
) -> None:
    async def body(kw: dict[str, Any]) -> Any:
        return await usage(kw, names)

    plain, pooled = await side_by_side(body, kw)
    assert pooled == plain


async def test_load_data_local_sees_the_same_results(
    side_by_side: SideBySide, kw: dict[str, Any], names: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "rows.txt"
    data.write_text("one\ntwo\nthree\n")
    body = functools.partial(load_data_local, names=names, path=str(data))
    plain, pooled = await side_by_side(body, kw)
    assert pooled == plain
    assert plain[0] == (3, 3)


async def test_option_files_see_the_same_results(
    side_by_side: SideBySide, kw: dict[str, Any], names: dict[str, str], option_file: str
) -> None:
    with open(option_file, "a") as file:  # noqa: ASYNC230 (a small local file)
        file.write("[mysqlpool_parity]\ndefault-character-set=utf8mb3\n")
    body = functools.partial(option_files, names=names, path=option_file)
    plain, pooled = await side_by_side(body, kw)
    assert pooled == plain
