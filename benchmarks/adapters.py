"""One small adapter per pool implementation, behind a common interface.

Every adapter has ``async open()``, ``async close()``, ``acquire()`` (an async
context manager yielding a connection), ``async query(conn)`` (``SELECT 1``
and a fetch through a cursor) and ``connections_opened()`` (None where the
implementation does not say). ``async warm(n)`` leaves ``n`` idle connections
in the pool by checking out ``n`` at once and returning them. ``pool_opts``
(keyword) passes pool options to mysqlpool and SQLAlchemy (scenario 8's
pre-ping); other keywords are connect options.

All aiomysql-based adapters connect with the same keywords (those of the DSN,
parsed by ``mysqlpool.parse_dsn``, so ``autocommit=True``); SQLAlchemy keeps its
own connection defaults (it manages transactions itself).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiomysql

import mysqlpool

SELECT1 = "SELECT 1"


def connect_kwargs(dsn: str, **extra: Any) -> dict[str, Any]:
    """aiomysql.connect keywords for ``dsn`` plus ``extra``."""
    kwargs = mysqlpool.parse_dsn(dsn).connect_kwargs()
    kwargs.update(extra)
    return kwargs


async def cursor_query(conn: Any) -> None:
    """``SELECT 1`` + fetch through a DBAPI-style async cursor (aiomysql, asyncmy)."""
    async with conn.cursor() as cur:
        await cur.execute(SELECT1)
        await cur.fetchall()


class Adapter:
    """The common interface. ``dedicated`` adapters own their connections."""

    name = "?"
    driver = "aiomysql"
    dedicated = False

    def __init__(self, dsn: str, size: int, *, pool_opts: dict[str, Any] | None = None,
                 **extra: Any) -> None:
        self.dsn = dsn
        self.size = size
        self.pool_opts = dict(pool_opts or {})  # pool options (mysqlpool, SQLAlchemy only)
        self.kwargs = connect_kwargs(dsn, **extra)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def acquire(self) -> Any:
        raise NotImplementedError

    async def query(self, conn: Any) -> None:
        await cursor_query(conn)

    def connections_opened(self) -> int | None:
        return None

    async def warm(self, n: int) -> None:
        held: list[Any] = []
        gate = asyncio.Event()

        async def hold() -> None:
            async with self.acquire() as conn:
                await self.query(conn)
                held.append(conn)
                if len(held) == n:
                    gate.set()
                await gate.wait()

        await asyncio.gather(*(hold() for _ in range(n)))


def asyncmy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same connect options, as ``asyncmy.connect`` keywords (its own
    defaults where the option is unset)."""
    import asyncmy.connection

    accepted = inspect.signature(asyncmy.connection.Connection).parameters
    return {k: v for k, v in kwargs.items() if k in accepted and v is not None and v != ""}


async def asyncmy_connect(kwargs: dict[str, Any]) -> Any:
    import asyncmy

    return await asyncmy.connect(**asyncmy_kwargs(kwargs))


class MysqlpoolAdapter(Adapter):
    """``mysqlpool.Pool(dsn, pool_size=N, max_overflow=0)``, default options."""

    name = "mysqlpool"

    async def open(self) -> None:
        extra = {k: v for k, v in self.kwargs.items() if k == "init_command" and v}
        if self.driver != "aiomysql":
            extra["driver"] = self.driver
        self.pool = mysqlpool.Pool(self.dsn, pool_size=self.size, max_overflow=0, **extra,
                                   **self.pool_opts)
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    def acquire(self) -> Any:
        return self.pool.acquire()

    def connections_opened(self) -> int | None:
        return int(self.pool.stats().opened)


class AiomysqlAdapter(Adapter):
    """``aiomysql.create_pool(minsize=0, maxsize=N)``."""

    name = "aiomysql"

    async def open(self) -> None:
        self.pool = await aiomysql.create_pool(minsize=0, maxsize=self.size, **self.kwargs)

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()

    def acquire(self) -> Any:
        return self.pool.acquire()


class _SQLAlchemyBase(Adapter):
    def _url(self) -> tuple[Any, dict[str, Any]]:
        from sqlalchemy import URL

        kw = dict(self.kwargs)
        url = URL.create(
            "mysql+aiomysql",
            username=kw.pop("user"),
            password=kw.pop("password") or None,
            host=kw.pop("host"),
            port=kw.pop("port"),
            database=kw.pop("db"),
        )
        # SQLAlchemy manages autocommit and the charset itself.
        kw.pop("autocommit", None)
        connect_args = {k: v for k, v in kw.items() if v}
        return url, connect_args

    #: True: the engine's pool is mysqlpool (mysqlpool.sqlalchemy.create_async_engine).
    on_mysqlpool = False

    async def open(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.ext.asyncio import create_async_engine

        if self.on_mysqlpool:
            from mysqlpool.sqlalchemy import create_async_engine

        url, connect_args = self._url()
        self.engine = create_async_engine(
            url, pool_size=self.size, max_overflow=0, connect_args=connect_args,
            **self.pool_opts,
        )
        self._opened = 0

        def on_connect(*_: Any) -> None:
            self._opened += 1

        event.listen(self.engine.sync_engine, "connect", on_connect)

    async def close(self) -> None:
        await self.engine.dispose()

    def connections_opened(self) -> int | None:
        return self._opened


class SQLAlchemyEngineAdapter(_SQLAlchemyBase):
    """``create_async_engine(..., pool_size=N, max_overflow=0)`` through
    ``engine.connect()``: executes ``text("SELECT 1")`` and fetches the result."""

    name = "sqlalchemy-engine"

    async def open(self) -> None:
        from sqlalchemy import text

        await super().open()
        self._select1 = text(SELECT1)

    def acquire(self) -> Any:
        return self.engine.connect()

    async def query(self, conn: Any) -> None:
        result = await conn.execute(self._select1)
        result.fetchall()


class MysqlpoolEngineAdapter(SQLAlchemyEngineAdapter):
    """The same through ``mysqlpool.sqlalchemy.create_async_engine`` (the pool is mysqlpool)."""

    name = "mysqlpool-engine"
    on_mysqlpool = True


class SQLAlchemySessionAdapter(_SQLAlchemyBase):
    """An ``AsyncSession`` per operation (``async with sessionmaker() as session``)
    reading ``text("SELECT 1")``: what a FastAPI handler does. The session
    checks a connection out at its first statement and gives it back when closed."""

    name = "sqlalchemy-session"

    async def open(self) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import async_sessionmaker

        await super().open()
        self._select1 = text(SELECT1)
        self.sessions = async_sessionmaker(self.engine)

    def acquire(self) -> Any:
        return self.sessions()

    async def query(self, conn: Any) -> None:
        result = await conn.execute(self._select1)
        result.fetchall()


class MysqlpoolSessionAdapter(SQLAlchemySessionAdapter):
    """The same through ``mysqlpool.sqlalchemy.create_async_engine``."""

    name = "mysqlpool-session"
    on_mysqlpool = True


class SQLAlchemyPoolAdapter(_SQLAlchemyBase):
    """The ``AsyncAdaptedQueuePool`` alone, without the Connection/Result layer.

    ``await engine.raw_connection()`` checks a pooled connection out (one
    ``greenlet_spawn``); the query runs on its ``driver_connection`` (the
    native aiomysql connection, so no greenlet per statement); the fairy is
    returned with ``greenlet_spawn(fairy.close)``, which runs the pool's
    reset-on-return (a rollback, which needs the greenlet to await I/O). That
    is the cheapest correct way: calling ``engine.pool.connect()`` or
    ``fairy.close()`` outside a greenlet fails as soon as the pool does I/O.
    """

    name = "sqlalchemy-pool"

    @asynccontextmanager
    async def _checkout(self) -> AsyncIterator[Any]:
        from sqlalchemy.util import greenlet_spawn

        fairy = await self.engine.raw_connection()
        try:
            yield fairy.driver_connection
        finally:
            await greenlet_spawn(fairy.close)

    def acquire(self) -> Any:
        return self._checkout()


class AsyncmyAdapter(Adapter):
    """``asyncmy.create_pool(minsize=0, maxsize=N)`` (its own driver)."""

    name = "asyncmy"
    driver = "asyncmy"

    async def open(self) -> None:
        import asyncmy

        kwargs = asyncmy_kwargs(self.kwargs)
        self.pool = await asyncmy.create_pool(minsize=0, maxsize=self.size, **kwargs)

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()

    def acquire(self) -> Any:
        return self.pool.acquire()


class _ConnectPerRequest:
    __slots__ = ("adapter", "conn")

    def __init__(self, adapter: ConnectPerRequestAdapter) -> None:
        self.adapter = adapter

    async def __aenter__(self) -> Any:
        await self.adapter.sem.acquire()
        try:
            self.conn = await aiomysql.connect(**self.adapter.kwargs)
        except BaseException:
            self.adapter.sem.release()
            raise
        self.adapter.opened += 1
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.conn.ensure_closed()
        finally:
            self.adapter.sem.release()


class ConnectPerRequestAdapter(Adapter):
    """``aiomysql.connect`` + close per operation, at most N at once (a semaphore)."""

    name = "connect-per-request"

    async def open(self) -> None:
        self.sem = asyncio.Semaphore(self.size)
        self.opened = 0

    def acquire(self) -> Any:
        return _ConnectPerRequest(self)

    def connections_opened(self) -> int | None:
        return self.opened

    async def warm(self, n: int) -> None:
        pass


class RawDedicatedAdapter(Adapter):
    """Reference: N connections, each owned by one task (the driver's limit).

    Scenarios run ``min(tasks, N)`` workers, worker ``i`` on ``conns[i]``.
    """

    name = "raw-dedicated"
    dedicated = True

    async def open(self) -> None:
        self.conns: list[Any] = []

    def connect(self) -> Any:
        if self.driver == "asyncmy":
            return asyncmy_connect(self.kwargs)
        return aiomysql.connect(**self.kwargs)

    async def warm(self, n: int) -> None:
        more = await asyncio.gather(*(self.connect() for _ in range(n - len(self.conns))))
        self.conns.extend(more)

    async def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns = []

    def connections_opened(self) -> int | None:
        return len(self.conns)


class FifoPool:
    """The cheapest fair pool: idle deque + waiter deque; a release hands the
    connection straight to the oldest waiter's future, so nobody barges."""

    def __init__(self, connect: Callable[[], Any], maxsize: int) -> None:
        self._connect = connect
        self._max = maxsize
        self._idle: collections.deque[Any] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.open = 0

    async def get(self) -> Any:
        if self._idle and not self._waiters:
            return self._idle.popleft()
        if self.open < self._max:
            self.open += 1
            try:
                return await self._connect()
            except BaseException:
                self.open -= 1
                raise
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.put(fut.result())
            raise

    def put(self, conn: Any) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._idle.append(conn)

    def close(self) -> None:
        while self._idle:
            self._idle.popleft().close()


class _FifoCheckout:
    __slots__ = ("conn", "pool")

    def __init__(self, pool: FifoPool) -> None:
        self.pool = pool

    async def __aenter__(self) -> Any:
        self.conn = await self.pool.get()
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        self.pool.put(self.conn)


class RawFifoAdapter(Adapter):
    """Reference: ``FifoPool`` over aiomysql connections (no reset, no checks)."""

    name = "raw-fifo"

    async def open(self) -> None:
        if self.driver == "asyncmy":
            self.pool = FifoPool(lambda: asyncmy_connect(self.kwargs), self.size)
        else:
            self.pool = FifoPool(lambda: aiomysql.connect(**self.kwargs), self.size)

    async def close(self) -> None:
        self.pool.close()

    def acquire(self) -> Any:
        return _FifoCheckout(self.pool)

    def connections_opened(self) -> int | None:
        return self.pool.open


class MysqlpoolAsyncmyAdapter(MysqlpoolAdapter):
    """``mysqlpool.Pool(dsn, driver="asyncmy", pool_size=N, max_overflow=0)``."""

    name = "mysqlpool-asyncmy"
    driver = "asyncmy"


class RawDedicatedAsyncmyAdapter(RawDedicatedAdapter):
    """Reference: N asyncmy connections, each owned by one task."""

    name = "raw-dedicated-asyncmy"
    driver = "asyncmy"


class RawFifoAsyncmyAdapter(RawFifoAdapter):
    """Reference: ``FifoPool`` over asyncmy connections."""

    name = "raw-fifo-asyncmy"
    driver = "asyncmy"


ADAPTERS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        MysqlpoolAdapter,
        AiomysqlAdapter,
        SQLAlchemyEngineAdapter,
        SQLAlchemyPoolAdapter,
        MysqlpoolEngineAdapter,
        SQLAlchemySessionAdapter,
        MysqlpoolSessionAdapter,
        AsyncmyAdapter,
        ConnectPerRequestAdapter,
        RawDedicatedAdapter,
        RawFifoAdapter,
        MysqlpoolAsyncmyAdapter,
        RawDedicatedAsyncmyAdapter,
        RawFifoAsyncmyAdapter,
    )
}
