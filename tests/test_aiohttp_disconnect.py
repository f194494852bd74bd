"""aiohttp and a client that hangs up: its default, and the recipe's setting.

The recipe's app (examples/aiohttp_app.py) served by a real ``AppRunner`` on
a loopback port (not aiohttp's ``TestServer``, which turns
``handler_cancellation`` on and so hides the default), with a raw-socket
client that sends a request and closes its socket while the handler runs
``SELECT SLEEP``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from conftest import Admin
from polling import until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples import aiohttp_app

BOUND = 10.0  # seconds: generous


class Recorder:
    """The test route: ``/slow?seconds=S`` holds a pooled connection for a SLEEP."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.thread_id = 0

    async def slow(self, request: web.Request) -> web.Response:
        pool = request.app[aiohttp_app.POOL_KEY]
        try:
            async with pool.acquire() as conn, conn.cursor() as cur:
                self.thread_id = conn.thread_id()
                self.events.append("started")
                await cur.execute("SELECT SLEEP(%s)", (float(request.query["seconds"]),))
                await cur.fetchone()
        except asyncio.CancelledError:
            self.events.append("cancelled")
            raise
        self.events.append("finished")
        return web.json_response({})


@contextlib.asynccontextmanager
async def serve(
    mysql_dsn: str, recorder: Recorder, **runner: Any
) -> AsyncIterator[tuple[int, Any]]:
    app = aiohttp_app.create_app(mysql_dsn, pool_size=1, max_overflow=0)
    app.router.add_get("/slow", recorder.slow)
    app_runner = web.AppRunner(app, **runner)
    await app_runner.setup()
    try:
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        port = app_runner.addresses[0][1]
        yield port, app[aiohttp_app.POOL_KEY]
    finally:
        await app_runner.cleanup()


async def hang_up_while_sleeping(port: int, recorder: Recorder, seconds: float) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /slow?seconds={seconds} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    await writer.drain()
    await until(lambda: "started" in recorder.events, "the handler runs its SLEEP", BOUND)
    writer.close()
    await writer.wait_closed()


async def test_by_default_aiohttp_lets_the_handler_run_for_nobody(mysql_dsn: str) -> None:
    recorder = Recorder()
    async with serve(mysql_dsn, recorder) as (port, pool):
        await hang_up_while_sleeping(port, recorder, 0.5)
        await until(lambda: "finished" in recorder.events, "the SLEEP ran to its end", BOUND)
        assert recorder.events == ["started", "finished"]
        assert pool.stats().discarded == 0  # its connection went back healthy


async def test_the_recipes_runner_options_cancel_the_handler_and_kill_its_query(
    mysql_dsn: str, admin: Admin
) -> None:
    recorder = Recorder()
    async with serve(mysql_dsn, recorder, **aiohttp_app.RUNNER_OPTIONS) as (port, pool):
        await hang_up_while_sleeping(port, recorder, 30)
        await until(lambda: "cancelled" in recorder.events, "the handler cancelled", BOUND)

        async def not_sleeping() -> bool:
            running = await admin.scalar(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                " WHERE ID = %s AND INFO LIKE 'SELECT SLEEP(%%'",
                recorder.thread_id,
            )
            return not running

        await until(not_sleeping, "the abandoned SLEEP was KILLed", BOUND)
        # The pool's one connection slot is free again, at once.
        async with pool.acquire(timeout=BOUND):
            pass
        stats = pool.stats()
        assert (stats.discarded, stats.in_use, stats.waiting) == (1, 0, 0)
        assert recorder.events == ["started", "cancelled"]
