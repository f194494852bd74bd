"""PoolManager: one pool per connection identity."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType, TracebackType
from typing import Any

from ._dsn import resolve_params
from ._options import split_pool_options
from ._params import ConnectParams
from ._pool import Pool
from ._stats import PoolStats
from .errors import PoolClosed

__all__ = ["PoolManager"]


class PoolManager:
    """Keeps one :class:`Pool` per :attr:`ConnectParams.key`.

    The key covers host, port, socket, user, a digest of the password, db
    and every connect option, so callers with different credentials never
    share a connection: a wrong password gets its own pool, and fails there.

    Args:
        pool_options: defaults for every pool it creates (``pool_size``,
            ``recycle``, ... as :class:`Pool` takes them).
    """

    def __init__(self, **pool_options: Any) -> None:
        # Fail on a bad option now, not at the first acquire.
        Pool(ConnectParams(), **pool_options)
        self._options = pool_options
        # key -> pool. A pool is stored before its first await, so concurrent
        # get_pool() calls for one key find the same one.
        self._pools: dict[tuple[Any, ...], Pool] = {}
        self._closed = False

    async def get_pool(self, dsn: str | ConnectParams | None = None, **connect_kwargs: Any) -> Pool:
        """The pool for these parameters, created and opened on first use.

        Takes a DSN, a :class:`ConnectParams`, or ``aiomysql.connect``
        keywords. Always the same Pool object for the same key.

        Raises:
            PoolClosed: the manager is closed.
        """
        pool = self._pool_for(dsn, connect_kwargs)
        await pool.open()
        return pool

    def _pool_for(self, dsn: str | ConnectParams | None, connect_kwargs: dict[str, Any]) -> Pool:
        """The pool for these parameters, created (not opened) if new."""
        if self._closed:
            raise PoolClosed("PoolManager is closed")
        pool_options: dict[str, Any] = {}
        if isinstance(dsn, str):
            # Pool options in a DSN shape the pool created for it; they are
            # not part of the identity, so the first DSN for a key decides.
            dsn, pool_options = split_pool_options(dsn)
        params = resolve_params(dsn, connect_kwargs)
        pool = self._pools.get(params.key)
        if pool is None:
            pool = Pool(params, **{**self._options, **pool_options})
            self._pools[params.key] = pool
        return pool

    def acquire(
        self, dsn: str | ConnectParams | None = None, **connect_kwargs: Any
    ) -> _ManagedAcquire:
        """``async with manager.acquire(dsn_or_kwargs) as conn``: check out of
        the pool for those parameters."""
        return _ManagedAcquire(self, dsn, connect_kwargs)

    @property
    def pools(self) -> Mapping[tuple[Any, ...], Pool]:
        """Read-only view of the pools by key."""
        return MappingProxyType(self._pools)

    def stats(self) -> dict[str, PoolStats]:
        """Each pool's stats, by its redacted DSN.

        Two pools whose DSNs differ only in what redaction hides (the
        password) would share a label: the later ones get `` #2``, `` #3``...
        so no pool's stats are dropped.
        """
        result: dict[str, PoolStats] = {}
        for pool in self._pools.values():
            label = base = str(pool.params)
            count = 1
            while label in result:
                count += 1
                label = f"{base} #{count}"
            result[label] = pool.stats()
        return result

    def close_nowait(self) -> None:
        """The synchronous half of :meth:`close`: take no new work and
        :meth:`Pool.close_nowait` every pool. Idempotent."""
        self._closed = True
        for pool in self._pools.values():
            pool.close_nowait()

    async def close(self, timeout: float | None = None) -> None:
        """Close every pool (see :meth:`Pool.close`); the manager takes no new work."""
        self._closed = True
        pools = list(self._pools.values())
        results = await asyncio.gather(
            *(pool.close(timeout) for pool in pools), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @property
    def closed(self) -> bool:
        """True once ``close()`` began."""
        return self._closed

    async def __aenter__(self) -> PoolManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<PoolManager {state} pools={len(self._pools)}>"


class _ManagedAcquire:
    __slots__ = ("_conn", "_connect_kwargs", "_dsn", "_manager", "_pool")

    def __init__(
        self,
        manager: PoolManager,
        dsn: str | ConnectParams | None,
        connect_kwargs: dict[str, Any],
    ) -> None:
        self._manager = manager
        self._dsn = dsn
        self._connect_kwargs = connect_kwargs
        self._pool: Pool | None = None
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        pool = await self._manager.get_pool(self._dsn, **self._connect_kwargs)
        self._conn = await pool.acquire()
        self._pool = pool
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, conn = self._pool, self._conn
        self._pool = self._conn = None
        assert pool is not None
        await pool.release(conn, error=exc)
