"""CancelOnDisconnect under a real uvicorn, with clients that hang up.

The FastAPI recipe runs in a uvicorn subprocess (tests/asgi_server.py) on a
free loopback port; clients are real sockets. A client that hangs up gets
its handler cancelled, its statement KILLed (seen in the server's process
list from a second connection), and its pooled connection's slot back, so
the requests behind it are served at once; what is not the middleware's to
cancel (a started stream, a body still to be read) is left alone; and a
cancellation from outside goes on through it. Bounds are generous: the
figures are in benchmarks/http_load.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Admin
from polling import until

SERVER = Path(__file__).resolve().parent / "asgi_server.py"
BOUND = 10.0  # seconds: generous, for a machine busy with other work
LONG = 30  # seconds a hung-up request's SLEEP would run if nobody stopped it


class Server:
    """A uvicorn subprocess serving the recipe, and the events its handlers record."""

    def __init__(self, port: int, events: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._events = events

    def events(self, tag: str) -> list[str]:
        """What the handlers of requests tagged ``tag`` recorded, in order."""
        lines = self._events.read_text(encoding="utf-8").splitlines()
        return [e["event"] for e in map(json.loads, lines) if e["tag"] == tag]

    def thread_id(self, tag: str) -> int:
        lines = self._events.read_text(encoding="utf-8").splitlines()
        return int(next(
            e["thread_id"] for e in map(json.loads, lines)
            if e["tag"] == tag and e["event"] == "started"
        ))

    async def recorded(self, tag: str, event: str) -> None:
        await until(lambda: event in self.events(tag), f"{event!r} for {tag}", timeout=BOUND)

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=BOUND) as client:
            answer = await client.get("/stats")
        result: dict[str, Any] = answer.json()
        return result


@contextlib.asynccontextmanager
async def uvicorn_server(
    mysql_dsn: str, tmp_path: Path, *args: str
) -> AsyncIterator[Server]:
    events = tmp_path / "events.jsonl"
    events.touch()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), str(events), *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MYSQL_DSN": mysql_dsn},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), BOUND)).decode()
        if not line.startswith("port "):
            assert proc.stderr is not None
            pytest.fail(f"the server did not start: {(await proc.stderr.read()).decode()}")
        server = Server(int(line.split()[1]), events)
        # The lifespan opens the pool before the first request is served.
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as client:
            assert (await client.get("/stats")).status_code == 200
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()  # uvicorn's graceful shutdown: the lifespan closes the pool
        _, stderr = await asyncio.wait_for(proc.communicate(), BOUND)
    # The server logs nothing at warning level or above (no "Exception in ASGI application").
    assert not stderr.strip(), stderr.decode()


async def request_then_hang_up(server: Server, path: str, tag: str, *, after: str) -> None:
    """Send ``GET path`` on a raw socket, wait until the handler recorded
    ``after``, then close the socket, as a client that gave up does."""
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        await writer.drain()
        await server.recorded(tag, after)
    finally:
        writer.close()
        await writer.wait_closed()


async def statement_gone(admin: Admin, thread_id: int) -> None:
    """The server runs no statement for ``thread_id`` any more (its SLEEP was KILLed)."""

    async def not_sleeping() -> bool:
        running = await admin.scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE ID = %s AND INFO LIKE 'SELECT SLEEP(%%'",
            thread_id,
        )
        return not running

    await until(not_sleeping, f"session {thread_id}'s SLEEP stopped", timeout=BOUND)


@pytest.fixture
def no_proxy() -> Iterator[None]:
    """httpx must talk to the loopback server directly, whatever the environment says."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.lower().endswith("_proxy")}
    yield
    os.environ.update(saved)


pytestmark = pytest.mark.usefixtures("no_proxy")


async def test_a_client_that_hangs_up_gets_its_handler_cancelled_and_its_query_killed(
    mysql_dsn: str, tmp_path: Path, admin: Admin
) -> None:
    async with uvicorn_server(mysql_dsn, tmp_path, "pool_size=1", "max_overflow=0") as server:
        path = f"/slow?seconds={LONG}&tag=gone"
        await request_then_hang_up(server, path, "gone", after="started")
        await server.recorded("gone", "cancelled")
        await statement_gone(admin, server.thread_id("gone"))

        # The only connection's slot is back: the next request is served now,
        # not after the abandoned SLEEP's 30 s.
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as client:
            health = await client.get("/health")
        assert health.status_code == 200
        stats = await server.stats()
        assert (stats["in_use"], stats["waiting"], stats["timeouts"]) == (0, 0, 0)
        assert stats["discarded"] == 1  # cancelled mid-query: closed, not reused
        assert "finished" not in server.events("gone")


async def test_abandoned_requests_free_the_pool_for_the_others(
    mysql_dsn: str, tmp_path: Path, admin: Admin
) -> None:
    """Ten clients give up on a pool of two (two running, eight queued for a
    connection): every handler is cancelled, queued or not, and the other
    users' requests are served at once."""
    async with uvicorn_server(mysql_dsn, tmp_path, "pool_size=2", "max_overflow=0") as server:
        tags = [f"gone-{i}" for i in range(10)]
        clients = [
            (await asyncio.open_connection("127.0.0.1", server.port)) for _ in tags
        ]
        for (_, writer), tag in zip(clients, tags, strict=True):
            writer.write(f"GET /slow?seconds={LONG}&tag={tag} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        await until(
            lambda: sum("started" in server.events(t) for t in tags) == 2, "two SLEEPs running"
        )
        await until(lambda: _waiting_is(server, 8), "eight handlers queued for a connection")
        running = [t for t in tags if "started" in server.events(t)]
        threads = [server.thread_id(t) for t in running]
        for _, writer in clients:
            writer.close()
        for _, writer in clients:
            await writer.wait_closed()

        for thread_id in threads:
            await statement_gone(admin, thread_id)
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as client:
            others = await asyncio.gather(*(client.get("/health") for _ in range(5)))
        assert [r.status_code for r in others] == [200] * 5
        for tag in running:
            await server.recorded(tag, "cancelled")
        # A queued handler may get a freed connection before its own
        # disconnect is seen: it is cancelled in its statement then.
        await until(
            lambda: all(server.events(t) in ([], ["started", "cancelled"]) for t in tags),
            "every handler cancelled or never started",
            timeout=BOUND,
        )
        late = [t for t in tags if t not in running and server.events(t)]
        for tag in late:
            await statement_gone(admin, server.thread_id(tag))
        stats = await server.stats()
        assert (stats["in_use"], stats["waiting"], stats["timeouts"]) == (0, 0, 0)
        assert stats["discarded"] == 2 + len(late)


async def _waiting_is(server: Server, count: int) -> bool:
    return bool((await server.stats())["waiting"] == count)


@pytest.mark.slow
async def test_without_the_middleware_uvicorn_lets_the_handler_run_for_nobody(
    mysql_dsn: str, tmp_path: Path
) -> None:
    """The behaviour the middleware exists for (uvicorn's default)."""
    args = ("--no-middleware", "pool_size=1", "max_overflow=0")
    async with uvicorn_server(mysql_dsn, tmp_path, *args) as server:
        await request_then_hang_up(server, "/slow?seconds=1&tag=orphan", "orphan", after="started")
        await server.recorded("orphan", "finished")  # SLEEP ran its whole second
        assert "cancelled" not in server.events("orphan")


async def test_the_handler_reads_the_whole_body(mysql_dsn: str, tmp_path: Path) -> None:
    """The middleware listens on receive() without taking the body from the app."""
    chunk = os.urandom(64 * 1024)

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(32):  # 2 MiB in 32 chunks, chunked transfer encoding
            yield chunk

    async with (
        uvicorn_server(mysql_dsn, tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=BOUND) as client,
    ):
        streamed = await client.post("/echo?tag=up", content=upload())
        small = await client.post("/echo?tag=small", content=b"hello")
        empty = await client.post("/echo?tag=empty")
    assert streamed.status_code == 200
    expected = hashlib.sha256(chunk * 32).hexdigest()
    assert streamed.json() == {"length": 32 * len(chunk), "sha256": expected}
    assert small.json() == {"length": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}
    assert empty.json()["length"] == 0


async def test_a_response_that_started_streaming_is_left_alone(
    mysql_dsn: str, tmp_path: Path
) -> None:
    async with uvicorn_server(mysql_dsn, tmp_path) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream?chunks=10&tag=s HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), BOUND)
        assert status.startswith(b"HTTP/1.1 200")
        writer.close()  # mid-stream
        await writer.wait_closed()
        await server.recorded("s", "stream finished")
        assert "stream cancelled" not in server.events("s")


async def test_a_cancellation_from_outside_goes_on_through_the_middleware(
    mysql_dsn: str, tmp_path: Path, admin: Admin
) -> None:
    """An outer layer's timeout cancels the request: the handler is
    cancelled, and the cancellation comes back out (else asyncio.wait_for
    would see the app return instead of timing out)."""
    async with uvicorn_server(mysql_dsn, tmp_path, "pool_size=1", "max_overflow=0") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND) as client:
            answer = await client.get(f"/slow?seconds={LONG}&tag=outer&deadline=0.5")
        assert answer.status_code == 504
        assert server.events("outer") == ["started", "cancelled", "outer timeout"]
        await statement_gone(admin, server.thread_id("outer"))


def test_the_middleware_is_pure_asgi_and_not_imported_by_mysqlpool() -> None:
    check = (
        "import sys, mysqlpool\n"
        "assert 'mysqlpool.asgi' not in sys.modules\n"
        "import mysqlpool.asgi\n"
        "frameworks = {'starlette', 'fastapi', 'uvicorn', 'aiohttp'} & set(sys.modules)\n"
        "assert not frameworks, frameworks\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
