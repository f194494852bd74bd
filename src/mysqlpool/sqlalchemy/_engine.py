"""``create_async_engine``: SQLAlchemy's asyncio engine over a mysqlpool pool."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

import mysqlpool

from ._arguments import connect_kwargs, mysqlpool_driver, pool_options
from ._pool import MysqlpoolPool

__all__ = ["create_async_engine"]


def create_async_engine(
    url: str | URL, *, mysqlpool_options: Mapping[str, Any] | None = None, **kw: Any
) -> AsyncEngine:
    """SQLAlchemy's ``create_async_engine``, with mysqlpool as the pool.

    Takes SQLAlchemy's arguments. ``pool_size``, ``max_overflow``,
    ``pool_timeout``, ``pool_recycle`` (seconds, -1 for never, or ``"auto"``:
    below the server's ``wait_timeout``, the default here),
    ``pool_pre_ping``, ``pool_reset_on_return`` (``"rollback"``,
    ``"reset"`` or None) and ``pool_use_lifo`` set mysqlpool's options of
    the same meaning; ``mysqlpool_options`` passes any other
    :class:`mysqlpool.Pool` argument (``hosts``, ``load_balance``,
    ``target``, ``min_size``, ``max_lifetime``, hooks, ``name``...).
    Connections are made from the URL and ``connect_args`` as SQLAlchemy
    would make them, with autocommit off.

    ``engine.pool`` is a :class:`MysqlpoolPool`; ``engine.pool.mysqlpool``
    the :class:`mysqlpool.Pool` underneath. A checkout that waits
    ``pool_timeout`` raises ``sqlalchemy.exc.TimeoutError``.

    Raises:
        ValueError: a URL for another database or driver, autocommit turned
            on, ``pool=``/``poolclass=``/``creator=`` given, or an option
            given twice (each message names it).
    """
    sa_url = make_url(url)
    driver = mysqlpool_driver(sa_url)
    options = pool_options(kw, mysqlpool_options or {})
    if options.get("reset_on_return") == "reset" and kw.get("isolation_level") is not None:
        raise ValueError(
            "mysqlpool.sqlalchemy: isolation_level= is set once on each new connection, and "
            "pool_reset_on_return='reset' would wipe it on every return; use 'rollback', or "
            "set the level in mysqlpool_options={'init_command': ...}"
        )
    if driver != "aiomysql":  # mysqlpool's default driver
        options["driver"] = driver
    dialect_cls = sa_url.get_dialect()
    _, url_kwargs = dialect_cls().create_connect_args(sa_url)
    connect = connect_kwargs(url_kwargs, kw.get("connect_args", {}))
    user_on_discard: Callable[[Any, str], None] | None = options.pop("on_discard", None)

    def make_pool(forget: Callable[[Any, str], None]) -> mysqlpool.Pool:
        def on_discard(conn: Any, reason: str) -> None:
            forget(conn, reason)
            if user_on_discard is not None:
                user_on_discard(conn, reason)

        return mysqlpool.Pool(**connect, **options, on_discard=on_discard)

    pool = MysqlpoolPool(
        make_pool, echo=kw.pop("echo_pool", None), logging_name=kw.pop("pool_logging_name", None)
    )
    engine = sa_create_async_engine(sa_url, pool=pool, **kw)
    _note_transaction_ends(engine.sync_engine.dialect)
    return engine


def _note_transaction_ends(dialect: Dialect) -> None:
    """Tell mysqlpool when SQLAlchemy's own COMMIT or ROLLBACK succeeded.

    The connection then needs no ROLLBACK on return, which is what makes
    an AsyncSession read or commit cost 2 statements rather than 3. The
    dialect instance is this engine's own, so nothing else is affected.
    """
    # The wrappers take what the engine passes (the pool's proxy) as Any.
    dialect.do_rollback = _noting_the_end(dialect.do_rollback)  # type: ignore[method-assign,assignment]
    dialect.do_commit = _noting_the_end(dialect.do_commit)  # type: ignore[method-assign,assignment]


def _noting_the_end(end: Callable[[Any], None]) -> Callable[[Any], None]:
    """``end`` (the dialect's COMMIT or ROLLBACK), then mysqlpool told it succeeded."""

    def ended(dbapi_connection: Any) -> None:
        end(dbapi_connection)
        # The engine passes the pool's proxy; its record is the checkout.
        # Run at every COMMIT and ROLLBACK: EAFP, which costs nothing when
        # the attributes are there, rather than getattr and isinstance.
        try:
            record = dbapi_connection._connection_record
            conn = record.conn
        except AttributeError:  # not one of this bridge's checkouts
            return
        if conn is not None:
            record.mysqlpool.transaction_ended(conn)

    return ended
