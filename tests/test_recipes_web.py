"""The web recipes (examples/fastapi_app.py, examples/aiohttp_app.py) in their real frameworks.

Each app runs against the test server: its routes answer, concurrency stays
within ``pool_size + max_overflow``, and shutting down with requests in
flight lets them finish, refuses new ones, and leaves no connection open on
either side.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import FastAPI, Request

from conftest import Admin
from mysqlpool import Pool, PoolClosed
from polling import until

# examples/ sits next to tests/, outside the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples import aiohttp_app, fastapi_app

SLOW = 0.3  # seconds a request "in flight" holds its connection
# A handler cancelled mid-query: the server notices its client gone only once
# the statement ends, so this bounds how long its session outlives the pool.
CANCELLED = 1.0


@pytest_asyncio.fixture
async def items(admin: Admin) -> AsyncIterator[None]:
    """Table ``item``, which both recipes read, holding item 1."""
    await admin.scalar(
        "CREATE TABLE IF NOT EXISTS item (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL)"
    )
    await admin.scalar("REPLACE INTO item (id, name) VALUES (1, 'widget')")
    await admin.conn.commit()
    yield
    await admin.scalar("DROP TABLE IF EXISTS item")


async def gone(admin: Admin, thread_ids: set[int]) -> None:
    """Wait until the server has no session left with any of ``thread_ids``."""

    async def all_gone() -> bool:
        for thread_id in thread_ids:
            if await admin.is_alive(thread_id):
                return False
        return True

    await until(all_gone, f"sessions {sorted(thread_ids)} closed")


async def sleeping_sessions(admin: Admin, count: int) -> set[int]:
    """The server sessions running the slow route's SLEEP, once ``count`` are."""
    query = (
        "SELECT ID FROM information_schema.PROCESSLIST"
        " WHERE INFO LIKE 'SELECT SLEEP(%' AND USER = SUBSTRING_INDEX(USER(), '@', 1)"
    )
    found: set[int] = set()

    async def all_running() -> bool:
        async with admin.conn.cursor() as cur:
            await cur.execute(query)
            found.clear()
            found.update(int(row[0]) for row in await cur.fetchall())
        return len(found) >= count

    await until(all_running, f"{count} SLEEPs running on the server")
    return found


def assert_closed_cleanly(pool: Pool) -> None:
    stats = pool.stats()
    assert pool.closed
    assert (stats.open, stats.idle, stats.in_use, stats.waiting) == (0, 0, 0, 0)
    # Every connection came back healthy and in time: none was terminated
    # (its holder's release would count it as discarded).
    assert stats.discarded == 0, stats
    pool.check_invariants()


# ---------------------------------------------------------------- FastAPI


def fastapi_with_slow_route(dsn: str, **options: Any) -> FastAPI:
    """The recipe's app plus a test route that holds its connection ``seconds``."""
    app = fastapi_app.create_app(dsn, **options)

    @app.get("/slow")
    async def slow(request: Request, conn: fastapi_app.Conn, seconds: float) -> dict[str, Any]:
        async with conn.cursor() as cur:
            await cur.execute("SELECT SLEEP(%s)", (seconds,))
            (slept,) = await cur.fetchone()
        pool: Pool = request.app.state.pool
        return {
            "slept": slept,
            "thread_id": conn.thread_id(),
            "open": pool.stats().open,
            "pool_closed": pool.closed,
        }

    return app


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    # ASGITransport sends no lifespan events: the tests drive the lifespan.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def test_fastapi_routes_answer(mysql_dsn: str, items: None) -> None:
    app = fastapi_app.create_app(mysql_dsn, pool_size=2)
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        pool: Pool = app.state.pool
        health = await client.get("/health")
        found = await client.get("/items/1")
        missing = await client.get("/items/2")
        assert pool.stats().in_use == 0  # the dependency gave each connection back
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (found.status_code, found.json()) == (200, {"id": 1, "name": "widget"})
    assert missing.status_code == 404
    assert pool.stats().discarded == 0  # the 404 raised through get_conn: not a broken connection
    assert_closed_cleanly(pool)


async def test_fastapi_50_concurrent_requests_on_a_pool_of_2(mysql_dsn: str) -> None:
    app = fastapi_with_slow_route(mysql_dsn, pool_size=2, max_overflow=1, timeout=10)
    peak = 0
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        pool: Pool = app.state.pool
        requests = asyncio.gather(*(client.get("/slow?seconds=0.01") for _ in range(50)))
        while not requests.done():  # sample between every loop step
            peak = max(peak, pool.stats().open)
            await asyncio.sleep(0)
        responses = await requests
        stats = pool.stats()
    assert [r.status_code for r in responses] == [200] * 50
    assert max(r.json()["open"] for r in responses) <= 3
    assert peak == 3  # overflow used, never exceeded: pool_size 2 + max_overflow 1
    assert stats.timeouts == 0
    assert stats.wait_time > 0  # requests did queue for a connection
    assert_closed_cleanly(pool)


async def test_fastapi_shutdown_with_requests_in_flight(mysql_dsn: str, admin: Admin) -> None:
    app = fastapi_with_slow_route(mysql_dsn, pool_size=2, max_overflow=0, shutdown_timeout=5)
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await stop.wait()  # what a server does until told to shut down

    server = asyncio.create_task(serve())
    await asyncio.wait_for(started.wait(), 5)
    pool: Pool = app.state.pool
    async with asgi_client(app) as client:
        in_flight = [asyncio.create_task(client.get(f"/slow?seconds={SLOW}")) for _ in range(2)]
        await until(lambda: pool.stats().in_use == 2, "both requests hold a connection")

        stop.set()  # lifespan exit: pool.close(timeout=5) begins
        await until(lambda: pool.closed, "close() began")
        late = await client.get("/health")
        assert (late.status_code, late.json()) == (503, {"detail": "shutting down"})
        assert late.headers["retry-after"] == "1"
        with pytest.raises(PoolClosed):
            await pool.acquire()
        # close() is waiting for the two requests, which are still running.
        assert not server.done()
        assert not any(task.done() for task in in_flight)

        responses = await asyncio.gather(*in_flight)
    await asyncio.wait_for(server, 5)
    assert [r.status_code for r in responses] == [200, 200]
    assert [r.json()["slept"] for r in responses] == [0, 0]  # SLEEP ran to its end
    # Unlike aiohttp, the lifespan closes the pool while requests still run.
    assert [r.json()["pool_closed"] for r in responses] == [True, True]
    assert pool.stats().discarded == 0
    assert_closed_cleanly(pool)
    await gone(admin, {r.json()["thread_id"] for r in responses})


# ---------------------------------------------------------------- aiohttp


async def slow_handler(request: web.Request) -> web.Response:
    """Test route: holds its connection ``seconds``."""
    seconds = float(request.query["seconds"])
    pool = request.app[aiohttp_app.POOL_KEY]
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT SLEEP(%s)", (seconds,))
        (slept,) = await cur.fetchone()
        body = {"slept": slept, "thread_id": conn.thread_id(), "pool_closed": pool.closed}
    return web.json_response(body)


def aiohttp_with_slow_route(dsn: str, **options: Any) -> web.Application:
    app = aiohttp_app.create_app(dsn, **options)
    app.router.add_get("/slow", slow_handler)
    return app


async def test_aiohttp_routes_answer_and_share_the_pool(mysql_dsn: str, items: None) -> None:
    app = aiohttp_with_slow_route(mysql_dsn, pool_size=2, max_overflow=0, timeout=10)
    async with TestClient(TestServer(app)) as client:
        pool = app[aiohttp_app.POOL_KEY]
        health = await client.get("/health")
        found = await client.get("/items/1")
        missing = await client.get("/items/2")
        bad = await client.get("/items/x")
        assert (health.status, await health.json()) == (200, {"status": "ok"})
        assert (found.status, await found.json()) == (200, {"id": 1, "name": "widget"})
        assert (missing.status, bad.status) == (404, 400)

        many = await asyncio.gather(*(client.get("/slow?seconds=0.01") for _ in range(20)))
        assert [r.status for r in many] == [200] * 20
        threads = {(await r.json())["thread_id"] for r in many}
        assert len(threads) <= 2
        stats = pool.stats()
        assert stats.opened <= 2  # never more than pool_size + max_overflow
        assert stats.wait_time > 0  # requests did queue for a connection
    assert_closed_cleanly(pool)


async def test_aiohttp_server_close_waits_for_requests_in_flight(
    mysql_dsn: str, admin: Admin
) -> None:
    """aiohttp stops listening, lets running handlers finish, then runs cleanup."""
    app = aiohttp_with_slow_route(mysql_dsn, pool_size=2, max_overflow=0)
    server = TestServer(app)
    async with TestClient(server) as client:
        pool = app[aiohttp_app.POOL_KEY]
        health_url = server.make_url("/health")
        in_flight = [asyncio.create_task(client.get(f"/slow?seconds={SLOW}")) for _ in range(2)]
        await until(lambda: pool.stats().in_use == 2, "both requests hold a connection")

        closing = asyncio.create_task(server.close())
        runner = server.runner
        assert runner is not None
        await until(lambda: not runner.sites, "the server stopped listening")
        # A new client finds no listener (no 503: the pool is not closing yet).
        async with aiohttp.ClientSession() as other:
            with pytest.raises(aiohttp.ClientConnectionError):
                await other.get(health_url)
        assert not any(task.done() for task in in_flight)

        responses = await asyncio.gather(*in_flight)
        bodies = [await r.json() for r in responses]
        await asyncio.wait_for(closing, 5)
    assert [r.status for r in responses] == [200, 200]
    assert [b["slept"] for b in bodies] == [0, 0]
    # cleanup_ctx (pool.close) ran only after the handlers were done.
    assert [b["pool_closed"] for b in bodies] == [False, False]
    assert pool.stats().discarded == 0
    assert_closed_cleanly(pool)
    with pytest.raises(PoolClosed):
        await pool.acquire()
    await gone(admin, {b["thread_id"] for b in bodies})


async def assert_cancelled_mid_query(pool: Any, in_flight: list[asyncio.Task[Any]]) -> None:
    """Both slow requests were cut off, and their connections, whose state is
    unknown after a cancellation mid-query, were closed, not reused."""
    results = await asyncio.gather(*in_flight, return_exceptions=True)
    assert all(isinstance(r, aiohttp.ServerDisconnectedError) for r in results), results
    stats = pool.stats()
    assert pool.closed
    assert (stats.open, stats.in_use) == (0, 0)
    assert stats.discarded == 2
    pool.check_invariants()


async def test_aiohttp_shutdown_timeout_cancels_handlers_and_discards_their_connections(
    mysql_dsn: str, admin: Admin
) -> None:
    """Past the runner's shutdown_timeout aiohttp cancels handlers; the pool drops their conns."""
    app = aiohttp_with_slow_route(mysql_dsn, pool_size=2, max_overflow=0)
    server = TestServer(app)
    await server.start_server(shutdown_timeout=0.05)  # far less than a request takes
    async with TestClient(server) as client:
        pool = app[aiohttp_app.POOL_KEY]
        in_flight = [
            asyncio.create_task(client.get(f"/slow?seconds={CANCELLED}")) for _ in range(2)
        ]
        await until(lambda: pool.stats().in_use == 2, "both requests hold a connection")
        threads = await sleeping_sessions(admin, 2)

        await asyncio.wait_for(server.close(), 5)
        await assert_cancelled_mid_query(pool, in_flight)
    await gone(admin, threads)


async def test_aiohttp_client_close_cancels_handlers(mysql_dsn: str, admin: Admin) -> None:
    """Closing the TestClient drops its connections first; TestServer cancels those handlers."""
    app = aiohttp_with_slow_route(mysql_dsn, pool_size=2, max_overflow=0)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        pool = app[aiohttp_app.POOL_KEY]
        in_flight = [
            asyncio.create_task(client.get(f"/slow?seconds={CANCELLED}")) for _ in range(2)
        ]
        await until(lambda: pool.stats().in_use == 2, "both requests hold a connection")
        threads = await sleeping_sessions(admin, 2)
    finally:
        await asyncio.wait_for(client.close(), 5)
    await assert_cancelled_mid_query(pool, in_flight)
    await gone(admin, threads)
