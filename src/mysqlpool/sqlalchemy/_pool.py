"""``MysqlpoolPool``: a ``sqlalchemy.pool.Pool`` whose connections come from mysqlpool.

SQLAlchemy's engine asks its pool for a *connection record* on every
checkout and gives it back on every return. Here each checkout is a new
record around a connection checked out of a :class:`mysqlpool.Pool`, and
its return releases that connection, so waiting, fairness, limits,
recycling, health and the reset on return are all mysqlpool's. Each
physical connection gets one SQLAlchemy adapter (the dialect's
``AsyncAdapt_*_connection``) and one ``info`` dict for its whole life, and
the dialect's connect events run once, when it is new.

SQLAlchemy calls the pool synchronously, inside its greenlet when there is
one: ``await_only`` reaches the event loop from there. The only return made
outside a greenlet is garbage collection of a connection its holder
abandoned; that one is closed, synchronously, which frees its slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.pool import Pool as SAPool
from sqlalchemy.pool.base import _ConnectionRecord
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

import mysqlpool

__all__ = ["MakePool", "MysqlpoolPool"]

#: Builds the mysqlpool.Pool for a MysqlpoolPool (again at each ``recreate()``),
#: given the ``on_discard`` hook the bridge needs.
MakePool = Callable[[Callable[[Any, str], None]], mysqlpool.Pool]

#: SQLAlchemy's error code for "QueuePool limit ... reached, connection timed out".
_TIMEOUT_CODE = "3o7r"


class _Physical(NamedTuple):
    """What SQLAlchemy keeps about one physical connection, across checkouts."""

    adapted: DBAPIConnection  # the dialect's adapter around the driver's connection
    started: float  # time.time() when it was opened: SQLAlchemy's starttime
    info: dict[Any, Any]  # ``connection.info``: the user's, for the connection's life


class _Checkout(_ConnectionRecord):
    """One checkout of a mysqlpool connection, as SQLAlchemy's connection record."""

    __slots__ = ("_info", "bridge", "conn", "mysqlpool")

    _info: dict[Any, Any]  # set by MysqlpoolPool._attach, before SQLAlchemy sees the record

    def __init__(self, bridge: MysqlpoolPool) -> None:
        super().__init__(bridge, connect=False)
        self.bridge = bridge
        self.mysqlpool = bridge._mysqlpool  # told of each COMMIT and ROLLBACK that ends
        self.conn: Any = None  # the driver's connection, while checked out of mysqlpool

    @property
    def info(self) -> dict[Any, Any]:
        """``connection.info``: its physical connection's, for that connection's life.

        A slot rather than SQLAlchemy's memoized attribute, which would give
        every checkout an instance dict to hold it.
        """
        return self._info

    def get_connection(self) -> DBAPIConnection:
        if self.dbapi_connection is None:
            # SQLAlchemy's reconnect, after its pre-ping or a checkout event
            # found the connection dead: another from mysqlpool, the old one closed.
            self.bridge._reconnect(self)
        assert self.dbapi_connection is not None
        return self.dbapi_connection


class MysqlpoolPool(SAPool):
    """A SQLAlchemy pool that checks connections out of a :class:`mysqlpool.Pool`.

    Made by :func:`mysqlpool.sqlalchemy.create_async_engine` (SQLAlchemy
    gives a pool class no URL, so it can't be named as ``poolclass=``).
    ``engine.pool.mysqlpool`` is the pool underneath: its ``stats()``,
    hooks and Prometheus collector work as for any mysqlpool pool.

    Returned connections are reset by mysqlpool (``reset_on_return``:
    ROLLBACK only when a transaction may be open, or COM_RESET_CONNECTION),
    so SQLAlchemy's own reset on return is off. ``invalidate()``, a
    disconnect SQLAlchemy detects, and a pool-wide invalidation close the
    connections concerned. ``dispose()`` closes the mysqlpool pool: idle
    connections at once, checked-out ones as they come back.
    """

    _is_asyncio = True

    def __init__(
        self,
        make_pool: MakePool,
        *,
        dialect: Dialect | None = None,
        echo: Any = None,
        logging_name: str | None = None,
        _dispatch: Any = None,
    ) -> None:
        super().__init__(
            _no_creator,
            recycle=-1,  # mysqlpool recycles
            echo=echo,
            logging_name=logging_name,
            reset_on_return=None,  # mysqlpool resets
            dialect=dialect,
            pre_ping=False,  # mysqlpool pings (pre_ping), cheaper than SQLAlchemy's SELECT 1
            _dispatch=_dispatch,
        )
        self._make_pool = make_pool
        # Each physical connection mysqlpool has open and SQLAlchemy has seen,
        # by driver connection; mysqlpool's on_discard removes it when closed.
        self._physical: dict[Any, _Physical] = {}
        self._mysqlpool = make_pool(self._forget)

    @property
    def mysqlpool(self) -> mysqlpool.Pool:
        """The :class:`mysqlpool.Pool` underneath (stats, hooks, Prometheus)."""
        return self._mysqlpool

    # -------------------------------------------------------------- checkout

    def _do_get(self) -> ConnectionPoolEntry:
        record = _Checkout(self)
        self._attach(record, *self._checkout())
        return record

    def _checkout(self) -> tuple[Any, _Physical | None]:
        """A driver connection checked out of mysqlpool, waiting if needed,
        and what SQLAlchemy keeps about it (None: it sees it for the first time)."""
        pool = self._mysqlpool
        while True:
            conn = pool.try_acquire()  # no I/O, no greenlet switch: the common case
            if conn is None:
                try:
                    conn = await_only(pool.acquire())
                except mysqlpool.PoolTimeout as timeout:
                    # The error SQLAlchemy users catch, naming the limits as PoolTimeout does.
                    raise sa_exc.TimeoutError(str(timeout), code=_TIMEOUT_CODE) from timeout
            physical = self._physical.get(conn)
            if physical is None or physical.started >= self._invalidate_time:
                return conn, physical
            # Opened before a pool-wide invalidation while checked out: closed now.
            pool.discard(conn)

    def _attach(self, record: _Checkout, conn: Any, physical: _Physical | None) -> None:
        """Make ``record`` the checkout of ``conn``; the dialect's connect events
        run when SQLAlchemy sees the connection for the first time."""
        record.conn = conn
        if physical is not None:
            record.dbapi_connection = physical.adapted
            record.starttime = physical.started
            record.fresh = False
            record._info = physical.info
            return
        try:
            adapted = self._adapt(conn)
            info: dict[Any, Any] = {}
            record._info = info
            record.dbapi_connection = adapted
            record.starttime = time.time()
            record.fresh = True
            self._physical[conn] = _Physical(adapted, record.starttime, info)
            dispatch = self.dispatch
            if dispatch.first_connect:
                dispatch.first_connect.for_modify(dispatch).exec_once_unless_exception(
                    adapted, record
                )
            # The engine's first connect initializes the dialect: the first
            # run holds a mutex, as SQLAlchemy's own records do.
            dispatch.connect.for_modify(dispatch)._exec_w_sync_on_first_run(adapted, record)
        except BaseException:
            # Not configured as the engine wants it: never handed out.
            record.dbapi_connection = None
            record.conn = None
            self._mysqlpool.discard(conn)
            raise

    def _adapt(self, conn: Any) -> DBAPIConnection:
        """The dialect's adapter around a driver connection mysqlpool opened."""

        async def opened() -> Any:
            return conn

        dbapi = cast(Dialect, self._dialect).loaded_dbapi
        return cast(DBAPIConnection, dbapi.connect(async_creator_fn=opened))

    def _reconnect(self, record: _Checkout) -> None:
        old, record.conn = record.conn, None
        if old is not None:
            self._mysqlpool.discard(old)
        self._attach(record, *self._checkout())

    # ---------------------------------------------------------------- return

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        checkout: _Checkout = record  # type: ignore[assignment]  # ours: made by _do_get
        conn = checkout.conn
        if conn is None:
            return  # already given back (a failed attach, a reconnect that failed)
        checkout.conn = None
        pool = self._mysqlpool
        if (
            checkout.dbapi_connection is None  # invalidated, detached or garbage-collected
            or checkout._soft_invalidate_time > checkout.starttime
            or self._invalidate_time > checkout.starttime
        ):
            pool.discard(conn)
        elif in_greenlet():
            # mysqlpool's reset on return: a ROLLBACK only when a transaction
            # may be open (not after SQLAlchemy's own COMMIT or ROLLBACK).
            # Most returns need none and are settled at once, without a
            # coroutine or a trip to the event loop.
            reset = pool.release_nowait(conn)
            if reset is not None:
                await_only(reset)
        else:
            # No loop to await the reset in: closed rather than reused unreset.
            pool.discard(conn)

    def _forget(self, conn: Any, reason: str) -> None:
        """mysqlpool closed ``conn``: its adapter and info go too."""
        self._physical.pop(conn, None)

    def _invalidate(
        self,
        connection: PoolProxiedConnection,
        exception: BaseException | None = None,
        _checkin: bool = True,
    ) -> None:
        # A disconnect SQLAlchemy saw invalidates every connection opened
        # before now: the idle ones are closed at once, the checked-out ones
        # when they come back (their starttime is older).
        super()._invalidate(connection, exception, _checkin)
        self._mysqlpool.clear()

    # ------------------------------------------------------------- lifecycle

    def recreate(self) -> MysqlpoolPool:
        """A new pool like this one, over a new mysqlpool pool (``engine.dispose()``)."""
        self.logger.info("Pool recreating")
        return self.__class__(
            self._make_pool,
            dialect=cast(Dialect, self._dialect),
            echo=self.echo,
            logging_name=self._orig_logging_name,
            _dispatch=self.dispatch,
        )

    def dispose(self) -> None:
        """Close the mysqlpool pool: idle connections now, checked-out ones as
        they come back; nothing new is handed out."""
        pool = self._mysqlpool
        pool.close_nowait()
        if in_greenlet() and pool.stats().in_use == 0:
            await_only(pool.close())  # nothing out: also joins its background tasks
        self.logger.info("Pool disposed. %s", self.status())

    # ------------------------------------------------------------ inspection

    def status(self) -> str:
        """A brief description, in SQLAlchemy's ``QueuePool`` words."""
        return (
            f"Pool size: {self.size()}  Connections in pool: {self.checkedin()} "
            f"Current Overflow: {self.overflow()} Current Checked out "
            f"connections: {self.checkedout()}"
        )

    def size(self) -> int:
        """``pool_size``."""
        return self._mysqlpool.size

    def timeout(self) -> float | None:
        """``pool_timeout``: seconds a checkout waits (None: forever)."""
        return self._mysqlpool.options.timeout

    def checkedin(self) -> int:
        """Idle connections."""
        return self._mysqlpool.stats().idle

    def overflow(self) -> int:
        """Connections open (or opening) beyond ``pool_size``; negative below it."""
        stats = self._mysqlpool.stats()
        return stats.open + stats.opening - stats.pool_size

    def checkedout(self) -> int:
        """Connections checked out."""
        return self._mysqlpool.stats().in_use

    def __repr__(self) -> str:
        return f"<MysqlpoolPool over {self._mysqlpool!r}>"


def _no_creator() -> DBAPIConnection:
    raise AssertionError("MysqlpoolPool opens connections through mysqlpool")
