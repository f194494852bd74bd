"""What the SQLAlchemy bridge's tests share: engines on the test server that
are always disposed, and counting what a session sends to the server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import drivers
from mysqlpool import Pool
from mysqlpool.sqlalchemy import MysqlpoolPool, create_async_engine

EngineFactory = Callable[..., AsyncEngine]


def sa_url(mysql_dsn: str) -> str:
    """The test server's DSN as a SQLAlchemy URL for this run's driver
    (``pytest --driver``)."""
    scheme, rest = mysql_dsn.split("://", 1)
    assert scheme.partition("+")[0] in ("mysql", "mariadb"), mysql_dsn
    return f"mysql+{drivers.name()}://" + rest


def pool_of(engine: AsyncEngine) -> Pool:
    """The mysqlpool pool under ``engine`` (as users reach it)."""
    bridge = engine.pool
    assert isinstance(bridge, MysqlpoolPool)
    return bridge.mysqlpool


@pytest_asyncio.fixture
async def make_engine(mysql_dsn: str) -> AsyncIterator[EngineFactory]:
    """``make_engine(**kw)``: an engine on the test server, through mysqlpool.

    At the end of the test every engine's pool has consistent books and
    nothing checked out, and is disposed (so no session is left open).
    """
    engines: list[AsyncEngine] = []

    def factory(url: str | None = None, **kw: Any) -> AsyncEngine:
        engine = create_async_engine(url or sa_url(mysql_dsn), **kw)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        pool = pool_of(engine)
        pool.check_invariants()
        await engine.dispose()
        assert pool_of(engine) is not pool  # dispose() made a new one
        assert pool.closed
        assert pool.stats().open == 0, pool.stats()


@pytest_asyncio.fixture
async def table(mysql_dsn: str) -> AsyncIterator[str]:
    """A fresh InnoDB table ``(id INT AUTO_INCREMENT, v INT)``, dropped at the end."""
    name = f"sa_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(sa_url(mysql_dsn), pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(
            text(f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB")
        )
    try:
        yield name
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        await engine.dispose()


async def session_questions(engine: AsyncEngine) -> int:
    """The server's ``Questions`` counter of the session behind a pool of one.

    Read on the pool's one connection through mysqlpool itself, so the read
    costs a fixed number of statements (calibrated by :func:`statements`).
    """
    async with pool_of(engine).acquire() as conn, conn.cursor() as cur:
        await cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
        (_, value) = await cur.fetchone()
    return int(value)


async def statements(engine: AsyncEngine, operation: Callable[[], Awaitable[Any]]) -> int:
    """How many statements ``operation`` sent on the one pooled session,
    counted by the server (what reading the counter costs is measured first
    and taken off)."""
    first = await session_questions(engine)
    second = await session_questions(engine)
    reading = second - first
    await operation()
    third = await session_questions(engine)
    return third - second - reading
