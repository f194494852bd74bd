"""Recipe: a mysqlpool.Pool in a FastAPI (or Starlette) application.

The lifespan opens the pool on startup and closes it gracefully on shutdown;
``get_conn`` is a dependency that lends a route one connection for the
request. ``CancelOnDisconnect`` cancels a request's handler when its client
hangs up before the response starts (uvicorn itself lets it run on, holding
its connection for nobody); the pool then closes that connection and KILLs
its statement. A busy pool (``PoolTimeout``, or ``PoolOverloaded`` past
``max_waiting``) or one shutting down answers 503 with ``Retry-After``.
Serve it with ``MYSQL_DSN=mysql://... uvicorn --factory fastapi_app:from_env``
from this directory (uvicorn is not a dependency of this project).

Tested by ``tests/test_recipes_web.py``, against a real server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import aiomysql
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

import mysqlpool
from mysqlpool.asgi import CancelOnDisconnect

router = APIRouter()


def create_app(
    dsn: str,
    *,
    shutdown_timeout: float = 10.0,
    cancel_on_disconnect: bool = True,
    **pool_options: Any,
) -> FastAPI:
    """The application, its pool built from ``dsn`` and ``pool_options``.

    On shutdown the pool refuses new checkouts at once and waits up to
    ``shutdown_timeout`` seconds for requests still holding a connection.
    ``cancel_on_disconnect=False`` leaves out the middleware (to compare).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = mysqlpool.Pool(dsn, **pool_options)
        await pool.open()
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close(timeout=shutdown_timeout)

    app = FastAPI(lifespan=lifespan)
    if cancel_on_disconnect:
        app.add_middleware(CancelOnDisconnect)
    # Both errors are temporary and not the client's fault: 503 tells a load
    # balancer to retry elsewhere, where a 500 would page someone.
    # PoolOverloaded (refused at once past max_waiting) is a PoolTimeout.
    app.add_exception_handler(mysqlpool.PoolClosed, _service_unavailable)
    app.add_exception_handler(mysqlpool.PoolTimeout, _service_unavailable)
    app.include_router(router)
    return app


async def get_conn(request: Request) -> AsyncIterator[aiomysql.Connection]:
    """Dependency: a pooled connection, returned to the pool after the request."""
    pool: mysqlpool.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        yield conn


Conn = Annotated[aiomysql.Connection, Depends(get_conn)]


@router.get("/health")
async def health(conn: Conn) -> dict[str, str]:
    """200 when a pooled connection answers ``SELECT 1``."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        await cur.fetchone()
    return {"status": "ok"}


@router.get("/items/{item_id}")
async def read_item(item_id: int, conn: Conn) -> dict[str, Any]:
    """One row of table ``item`` (id, name), or 404."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT id, name FROM item WHERE id = %s", (item_id,))
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="no such item")
    return {"id": row[0], "name": row[1]}


async def _service_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Never str(exc): the pool's name shows host and user.
    detail = "shutting down" if isinstance(exc, mysqlpool.PoolClosed) else "database busy"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


def from_env() -> FastAPI:
    """``create_app`` for the DSN in ``MYSQL_DSN``: ``uvicorn --factory fastapi_app:from_env``."""
    return create_app(os.environ["MYSQL_DSN"])
