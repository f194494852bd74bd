"""Recipe: a mysqlpool.Pool in an aiohttp application.

A ``cleanup_ctx`` opens the pool on startup and closes it on cleanup;
handlers borrow a connection with ``async with request.app[POOL_KEY].acquire()``.
Run it with ``python aiohttp_app.py`` from this directory, ``MYSQL_DSN`` set.

aiohttp's shutdown stops listening, waits for requests in flight (the
runner's ``shutdown_timeout``), and only then runs cleanup: by the time
``pool.close()`` runs, no handler holds a connection any more.

A client that hangs up: since aiohttp 3.8.2 a handler runs on by default,
holding its connection for nobody; ``handler_cancellation=True`` (aiohttp
3.9+, in ``RUNNER_OPTIONS``) has aiohttp cancel it instead, and the pool
then closes its connection and KILLs its statement. aiohttp's own
``TestServer`` turns it on, so tests that use it do not show the default.

Tested by ``tests/test_recipes_web.py``, against a real server.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

import mysqlpool

POOL_KEY = web.AppKey("mysqlpool", mysqlpool.Pool)

#: For ``web.run_app`` or ``web.AppRunner``: cancel a handler whose client
#: disconnected (aiohttp's default since 3.8.2 is to let it run).
RUNNER_OPTIONS: dict[str, Any] = {"handler_cancellation": True}


def create_app(dsn: str, *, shutdown_timeout: float = 10.0, **pool_options: Any) -> web.Application:
    """The application, its pool built from ``dsn`` and ``pool_options``.

    ``shutdown_timeout`` bounds ``pool.close()``, for a connection a
    background task (not a request) may still hold at cleanup.
    """

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = mysqlpool.Pool(dsn, **pool_options)
        await pool.open()
        app[POOL_KEY] = pool
        yield
        await pool.close(timeout=shutdown_timeout)

    app = web.Application(middlewares=[pool_errors])
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/health", health)
    app.router.add_get("/items/{item_id}", read_item)
    return app


async def health(request: web.Request) -> web.Response:
    """200 when a pooled connection answers ``SELECT 1``."""
    async with request.app[POOL_KEY].acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT 1")
        await cur.fetchone()
    return web.json_response({"status": "ok"})


async def read_item(request: web.Request) -> web.Response:
    """One row of table ``item`` (id, name), or 404."""
    try:
        item_id = int(request.match_info["item_id"])
    except ValueError:
        raise web.HTTPBadRequest(text="item id must be an integer") from None
    async with request.app[POOL_KEY].acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT id, name FROM item WHERE id = %s", (item_id,))
        row = await cur.fetchone()
    if row is None:
        raise web.HTTPNotFound(text="no such item")
    return web.json_response({"id": row[0], "name": row[1]})


@web.middleware
async def pool_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """PoolClosed and PoolTimeout (PoolOverloaded too) as 503: temporary, and
    not the client's fault."""
    try:
        return await handler(request)
    except mysqlpool.PoolClosed:
        reason = "shutting down"
    except mysqlpool.PoolTimeout:
        reason = "database busy"
    raise web.HTTPServiceUnavailable(text=reason, headers={"Retry-After": "1"})


if __name__ == "__main__":
    web.run_app(create_app(os.environ["MYSQL_DSN"]), **RUNNER_OPTIONS)
