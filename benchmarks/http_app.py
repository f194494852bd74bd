"""The HTTP benchmark's server: one FastAPI app per data layer, under uvicorn.

``python benchmarks/http_app.py LAYER [--no-middleware]`` serves, on a free
loopback port (printed as ``port N`` once it listens), with uvloop and
httptools, one worker:

- ``mysqlpool``: the README's FastAPI recipe itself (examples/fastapi_app.py),
  a pool of 10 (``max_overflow=0``, the default 30 s timeout);
- ``aiomysql``: the same app shape on ``aiomysql.create_pool(maxsize=10)``;
- ``sqlalchemy``: the same on ``create_async_engine(pool_size=10,
  max_overflow=0)`` (30 s ``pool_timeout``), a connection per request.

Every layer's app has ``CancelOnDisconnect`` unless ``--no-middleware``, and
the same routes: ``/select1`` (``SELECT 1``), ``/sleep?seconds=S&tag=T``
(``SELECT SLEEP(S), T``: the tag shows in the server's process list) and
``/work?rounds=N&tag=T`` (``SELECT BENCHMARK(N, SHA1(T))``: a statement that
keeps a server CPU busy instead of waiting, as real work does). The
DSN comes from ``MYSQL_DSN`` (default ``mysql://root@127.0.0.1:3306/test``).
"""


import argparse
import contextlib
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import aiomysql
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples import fastapi_app

import mysqlpool
from mysqlpool.asgi import CancelOnDisconnect

DSN = os.environ.get("MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
POOL_SIZE = 10
logger = logging.getLogger("http_app")
LAYERS = ("mysqlpool", "aiomysql", "sqlalchemy")

Query = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


def routes(get_query: Callable[..., Any]) -> APIRouter:
    """The benchmark's routes, given a dependency that yields a ``query(sql, args)``."""
    router = APIRouter()
    QueryDep = Annotated[Query, Depends(get_query)]

    @router.get("/select1")
    async def select1(query: QueryDep) -> dict[str, Any]:
        return {"one": await query("SELECT 1", ())}

    @router.get("/sleep")
    async def sleep(query: QueryDep, seconds: float, tag: str) -> dict[str, Any]:
        logger.debug("SLEEP starts")
        return {"slept": await query("SELECT SLEEP(%s), %s", (seconds, tag))}

    @router.get("/work")
    async def work(query: QueryDep, rounds: int, tag: str) -> dict[str, Any]:
        return {"worked": await query("SELECT BENCHMARK(%s, SHA1(%s))", (rounds, tag))}

    return router


async def _cursor_query(conn: Any, sql: str, args: tuple[Any, ...]) -> Any:
    async with conn.cursor() as cur:
        await cur.execute(sql, args or None)
        row = await cur.fetchone()
    return row[0]


def mysqlpool_app() -> FastAPI:
    app = fastapi_app.create_app(
        DSN, pool_size=POOL_SIZE, max_overflow=0, cancel_on_disconnect=False
    )

    async def get_query(conn: fastapi_app.Conn) -> AsyncIterator[Query]:
        yield lambda sql, args: _cursor_query(conn, sql, args)

    app.include_router(routes(get_query))
    return app


def aiomysql_app() -> FastAPI:
    kwargs = mysqlpool.parse_dsn(DSN).connect_kwargs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await aiomysql.create_pool(minsize=0, maxsize=POOL_SIZE, **kwargs)
        app.state.pool = pool
        try:
            yield
        finally:
            pool.close()
            await pool.wait_closed()

    async def get_query(request: Request) -> AsyncIterator[Query]:
        async with request.app.state.pool.acquire() as conn:
            yield lambda sql, args: _cursor_query(conn, sql, args)

    app = FastAPI(lifespan=lifespan)
    app.include_router(routes(get_query))
    return app


def sqlalchemy_app() -> FastAPI:
    from sqlalchemy import text
    from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
    from sqlalchemy.ext.asyncio import create_async_engine

    params = mysqlpool.parse_dsn(DSN)
    password = params.password or ""
    if isinstance(password, bytes):
        password = password.decode()
    login = f"{params.user}:{password}"
    url = f"mysql+aiomysql://{login}@{params.host}:{params.port}/{params.db}"

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=30)
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.dispose()

    async def get_query(request: Request) -> AsyncIterator[Query]:
        async with request.app.state.engine.connect() as conn:

            async def query(sql: str, args: tuple[Any, ...]) -> Any:
                names = [f"a{i}" for i in range(len(args))]
                statement = text(sql % tuple(f":{n}" for n in names))
                return (await conn.execute(statement, dict(zip(names, args, strict=True)))).scalar()

            yield query

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "database busy"}, status_code=503,
                            headers={"Retry-After": "1"})

    app = FastAPI(lifespan=lifespan)
    app.add_exception_handler(SQLAlchemyTimeout, busy)
    app.include_router(routes(get_query))
    return app


def build(layer: str, middleware: bool) -> FastAPI:
    app = {"mysqlpool": mysqlpool_app, "aiomysql": aiomysql_app, "sqlalchemy": sqlalchemy_app}[
        layer
    ]()
    if middleware:
        app.add_middleware(CancelOnDisconnect)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("layer", choices=LAYERS)
    parser.add_argument("--no-middleware", action="store_true")
    args = parser.parse_args()
    if os.environ.get("HTTP_APP_DEBUG"):  # what happens when, on stderr
        logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)6d %(name)s %(message)s")
    app = build(args.layer, not args.no_middleware)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", log_level="error", access_log=False,
        backlog=2048, timeout_graceful_shutdown=2,
    )
    print(f"port {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
