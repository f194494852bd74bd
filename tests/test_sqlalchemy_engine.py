"""SQLAlchemy's asyncio engine on mysqlpool: arguments, transactions,
statement counts, timeout, dispose, and the pool SQLAlchemy sees.

Statement counts are the server's own (``SHOW SESSION STATUS LIKE
'Questions'`` on the pooled session), never the code's word for it.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conftest import Admin
from mysqlpool import PoolTimeout, parse_dsn
from mysqlpool.sqlalchemy import MysqlpoolPool, create_async_engine
from polling import until
from sa_support import EngineFactory, make_engine, pool_of, sa_url, statements, table

__all__ = ["make_engine", "table"]  # the fixtures, imported for pytest


async def count_rows(admin: Admin, table: str) -> int:
    return int(await admin.scalar(f"SELECT COUNT(*) FROM {table}"))


# -- the engine and its pool ---------------------------------------------------------


async def test_the_readme_example_maps_each_argument_onto_the_pool(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(
        pool_size=10,
        max_overflow=0,
        pool_timeout=30,
        pool_recycle="auto",
        pool_pre_ping=True,
        mysqlpool_options={"load_balance": "round_robin", "name": "shop"},
    )
    assert isinstance(engine.pool, sqlalchemy.pool.Pool)
    assert isinstance(engine.pool, MysqlpoolPool)
    options = pool_of(engine).options
    assert (options.pool_size, options.max_overflow, options.timeout) == (10, 0, 30.0)
    assert (options.recycle, options.pre_ping_after, options.reset_on_return) == (
        "auto", 1.0, "rollback"
    )
    assert (options.load_balance, options.name) == ("round_robin", "shop")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert pool_of(engine).stats().acquires == 1


async def test_sqlalchemy_spellings_of_never_and_unbounded(make_engine: EngineFactory) -> None:
    engine = make_engine(max_overflow=-1, pool_recycle=-1, pool_reset_on_return=None)
    options = pool_of(engine).options
    assert (options.max_overflow, options.recycle, options.reset_on_return) == (None, None, None)
    engine = make_engine(pool_reset_on_return="reset", pool_use_lifo=True, pool_recycle=600)
    options = pool_of(engine).options
    assert (options.reset_on_return, options.lifo, options.recycle) == ("reset", True, 600.0)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"poolclass": sqlalchemy.pool.NullPool}, "poolclass= can't be given"),
        ({"pool_reset_on_return": "commit"}, "pool_reset_on_return='commit' is not supported"),
        ({"connect_args": {"autocommit": True}}, "autocommit can't be turned on"),
        ({"mysqlpool_options": {"autocommit": True}}, "autocommit can't be turned on"),
        (
            {"pool_size": 3, "mysqlpool_options": {"pool_size": 4}},
            "pool_size is given twice",
        ),
        (
            {"isolation_level": "READ COMMITTED", "pool_reset_on_return": "reset"},
            "would wipe it",
        ),
    ],
)
def test_arguments_mysqlpool_cannot_honour_are_refused_by_name(
    mysql_dsn: str, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        create_async_engine(sa_url(mysql_dsn), **kw)


def test_autocommit_in_the_url_is_refused(mysql_dsn: str) -> None:
    url = sa_url(mysql_dsn)
    url += ("&" if "?" in url else "?") + "autocommit=true"
    with pytest.raises(ValueError, match="autocommit can't be turned on"):
        create_async_engine(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+pymysql://u:pw@db/shop", "use mysql+aiomysql://, mysql+asyncmy://"),
        ("postgresql+asyncpg://u:pw@db/shop", "pools MySQL and MariaDB"),
    ],
)
def test_other_drivers_and_databases_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        create_async_engine(url)
    assert "pw" not in str(refused.value)


async def test_url_scheme_hosts_list_and_connect_args_reach_the_pool(
    make_engine: EngineFactory, mysql_dsn: str
) -> None:
    p = parse_dsn(mysql_dsn)
    engine = make_engine(
        sa_url(mysql_dsn).replace("mysql+", "mariadb+", 1),
        connect_args={"program_name": "bridge-test"},
        mysqlpool_options={"hosts": [(p.host, p.port)], "min_size": 1},
    )
    pool = pool_of(engine)
    assert pool.params.hosts == [(p.host, p.port)]
    assert pool.params.connect_kwargs()["autocommit"] is False
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert pool.options.min_size == 1


def test_importing_mysqlpool_does_not_import_sqlalchemy() -> None:
    code = "import sys, mysqlpool; assert 'sqlalchemy' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_status_reads_like_sqlalchemys(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=3, max_overflow=2)
    async with engine.connect(), engine.connect() as second:
        await second.execute(text("SELECT 1"))
        status = engine.pool.status()
    assert status == (
        "Pool size: 3  Connections in pool: 0 Current Overflow: -1 "
        "Current Checked out connections: 2"
    )
    assert engine.pool.status() == (
        "Pool size: 3  Connections in pool: 2 Current Overflow: -1 "
        "Current Checked out connections: 0"
    )


async def test_one_record_per_checkout_and_connect_events_only_for_new_connections(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    connects: list[Any] = []
    records: list[Any] = []
    event.listen(engine.sync_engine, "connect", lambda dbapi, rec: connects.append(dbapi))
    event.listen(engine.sync_engine, "checkout", lambda dbapi, rec, proxy: records.append(rec))
    for n in range(5):
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            raw.info.setdefault("seen", []).append(n)  # lives as long as the connection
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert len(connects) == 1  # one physical connection, configured once
    assert len(records) == 5
    assert len({id(rec) for rec in records}) == 5
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.info["seen"] == [0, 1, 2, 3, 4]
        assert raw.dbapi_connection is connects[0]  # one adapter per physical connection
    assert pool_of(engine).stats().opened == 1


# -- transactions ---------------------------------------------------------------------


async def test_commit_rollback_and_an_exception_in_begin(
    make_engine: EngineFactory, table: str, admin: Admin
) -> None:
    engine = make_engine(pool_size=2)
    sessions = async_sessionmaker(engine)
    async with sessions() as session:
        await session.execute(text(f"INSERT INTO {table} (v) VALUES (1)"))
        await session.commit()
    assert await count_rows(admin, table) == 1
    async with sessions() as session:
        await session.execute(text(f"INSERT INTO {table} (v) VALUES (2)"))
        await session.rollback()
    assert await count_rows(admin, table) == 1

    class Boom(Exception):
        pass

    async def insert_then_fail() -> None:
        async with sessions() as session, session.begin():
            await session.execute(text(f"INSERT INTO {table} (v) VALUES (3)"))
            raise Boom

    with pytest.raises(Boom):
        await insert_then_fail()
    async with sessions() as session:  # closed without commit: rolled back
        await session.execute(text(f"INSERT INTO {table} (v) VALUES (4)"))
    assert await count_rows(admin, table) == 1
    assert pool_of(engine).stats().discarded == 0


async def test_each_session_starts_a_fresh_snapshot(
    make_engine: EngineFactory, table: str, admin: Admin
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)  # every session on one connection
    sessions = async_sessionmaker(engine)
    async with sessions() as session:
        assert (await session.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar() == 0
        await admin.scalar(f"INSERT INTO {table} (v) VALUES (1)")  # autocommit: committed
        # REPEATABLE READ: this session's snapshot doesn't see it...
        assert (await session.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar() == 0
    async with sessions() as session:  # ...the next one does
        assert (await session.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar() == 1


async def test_autocommit_is_off_on_every_connection(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=2)
    async with engine.connect() as first, engine.connect() as second:
        for conn in (first, second):
            assert (await conn.execute(text("SELECT @@autocommit"))).scalar() == 0


async def test_a_raw_dbapi_transaction_left_open_is_rolled_back_for_the_next_user(
    make_engine: EngineFactory, table: str, admin: Admin
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver_conn: Any = raw.driver_connection
        async with driver_conn.cursor() as cur:  # behind SQLAlchemy's back
            await cur.execute(f"INSERT INTO {table} (v) VALUES (1)")
    async with engine.connect() as conn:
        assert (await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar() == 0
        assert (await conn.execute(text("SELECT @@in_transaction"))).scalar() == 1
    assert await count_rows(admin, table) == 0
    assert pool_of(engine).stats().opened == 1  # rolled back, not discarded


# -- statements per operation -------------------------------------------------------


async def test_an_async_session_read_costs_two_statements(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    sessions = async_sessionmaker(engine)

    async def read() -> None:
        async with sessions() as session:
            assert (await session.execute(text("SELECT 1"))).scalar() == 1

    await read()  # the dialect's first-connect queries are behind us
    assert await statements(engine, read) == 2  # SELECT, ROLLBACK


async def test_an_async_session_commit_costs_two_statements(
    make_engine: EngineFactory, table: str
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    sessions = async_sessionmaker(engine)

    async def write() -> None:
        async with sessions() as session:
            await session.execute(text(f"INSERT INTO {table} (v) VALUES (1)"))
            await session.commit()

    await write()
    assert await statements(engine, write) == 2  # INSERT, COMMIT


async def test_engine_connect_costs_what_sqlalchemy_sends(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)

    async def read() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def begin_and_commit() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))

    await read()
    assert await statements(engine, read) == 2  # SELECT, ROLLBACK
    assert await statements(engine, begin_and_commit) == 2  # SELECT, COMMIT


async def test_a_statement_after_commit_is_still_rolled_back(
    make_engine: EngineFactory, table: str, admin: Admin
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        await conn.execute(text(f"INSERT INTO {table} (v) VALUES (1)"))
        await conn.commit()
        raw = await conn.get_raw_connection()
        driver_conn: Any = raw.driver_connection
        async with driver_conn.cursor() as cur:
            await cur.execute(f"INSERT INTO {table} (v) VALUES (2)")
    assert await count_rows(admin, table) == 1


# -- timeout --------------------------------------------------------------------------


async def test_a_full_pool_raises_sqlalchemys_timeout_naming_the_limits(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_timeout=0.2)
    async with engine.connect() as held:
        await held.execute(text("SELECT 1"))
        with pytest.raises(exc.TimeoutError) as timed_out:
            async with engine.connect():
                pass
    message = str(timed_out.value)
    assert "pool_size=1" in message, message
    assert "max_overflow=0" in message
    assert "0.2 s" in message
    assert isinstance(timed_out.value.__cause__, PoolTimeout)
    stats = pool_of(engine).stats()
    assert (stats.timeouts, stats.in_use, stats.waiting) == (1, 0, 0)


# -- dispose --------------------------------------------------------------------------


async def test_dispose_leaves_no_session_even_for_connections_returned_after_it(
    make_engine: EngineFactory, admin: Admin
) -> None:
    engine = make_engine(pool_size=3)
    threads: list[int] = []

    def opened(dbapi: Any, record: Any) -> None:
        threads.append(dbapi.driver_connection.thread_id())

    event.listen(engine.sync_engine, "connect", opened)
    async with engine.connect() as a, engine.connect() as b:
        await a.execute(text("SELECT 1"))
        await b.execute(text("SELECT 1"))
    held = await engine.connect()
    await held.execute(text("SELECT 1"))
    old = pool_of(engine)

    await engine.dispose()

    assert old.closed
    assert old.stats().idle == 0
    await held.close()  # comes back to the disposed pool: closed
    assert old.stats().open == 0
    assert len(threads) == 2  # held took one of the two back

    async def all_gone() -> bool:
        return not any([await admin.is_alive(thread) for thread in threads])

    await until(all_gone, "every session of the disposed pool closed")
    async with engine.connect() as conn:  # the engine goes on with a new pool
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert pool_of(engine) is not old


# -- the rest of SQLAlchemy ----------------------------------------------------------


async def test_stream_reads_rows_as_they_come(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=1)
    async with engine.connect() as conn:
        result = await conn.stream(text("SELECT seq FROM seq_1_to_1000"))
        total = 0
        async for row in result:
            total += row[0]
    assert total == 500500
    async with engine.connect() as conn:  # the connection came back usable
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert pool_of(engine).stats().discarded == 0


async def test_an_abandoned_stream_is_not_handed_out_half_read(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        result = await conn.stream(text("SELECT seq FROM seq_1_to_100000"))
        assert (await result.fetchmany(3))[0][0] == 1
        await result.close()
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 42"))).scalar() == 42


async def test_isolation_levels_are_reset_on_return(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, isolation_level="READ COMMITTED")

    async def level() -> str:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SELECT @@tx_isolation"))).scalar())

    assert await level() == "READ-COMMITTED"  # the engine's, set once per connection
    async with engine.connect() as conn:
        serial = await conn.execution_options(isolation_level="SERIALIZABLE")
        assert (await serial.execute(text("SELECT @@tx_isolation"))).scalar() == "SERIALIZABLE"
    assert await level() == "READ-COMMITTED"  # back to the engine's for the next user
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        assert (await auto.execute(text("SELECT @@autocommit"))).scalar() == 1
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT @@autocommit"))).scalar() == 0
    assert pool_of(engine).stats().opened == 1


async def test_the_reset_mode_gives_each_user_a_clean_session(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0, pool_reset_on_return="reset")
    async with engine.connect() as conn:
        await conn.execute(text("SET @left_behind = 1"))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT @left_behind"))).scalar() is None
        assert (await conn.execute(text("SELECT @@autocommit"))).scalar() == 0
    assert pool_of(engine).stats().opened == 1


async def test_concurrent_sessions_share_the_pool_fairly(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=3, max_overflow=0)
    sessions = async_sessionmaker(engine)

    async def read(n: int) -> int:
        async with sessions() as session:
            return int((await session.execute(text("SELECT :n"), {"n": n})).scalar_one())

    assert await asyncio.gather(*(read(n) for n in range(100))) == list(range(100))
    stats = pool_of(engine).stats()
    assert (stats.opened, stats.acquires, stats.in_use) == (3, 100, 0)


async def test_a_session_as_a_context_manager_gives_back_its_connection(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    session = AsyncSession(engine)
    await session.execute(text("SELECT 1"))
    assert pool_of(engine).stats().in_use == 1
    await session.close()
    assert pool_of(engine).stats().in_use == 0
