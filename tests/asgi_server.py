"""A real uvicorn server for the tests: the FastAPI recipe plus test routes.

``python tests/asgi_server.py EVENTS [--no-middleware] [pool options as
name=value...]`` serves ``examples/fastapi_app.create_app`` for the DSN in
``MYSQL_DSN`` on a free loopback port, prints ``port N`` once it listens,
and appends what its handlers do to the file ``EVENTS``, one JSON object a
line (``{"event": "cancelled", "tag": ...}``), for the test to read.

Test routes, besides the recipe's ``/health`` and ``/items/{id}``:

- ``GET /slow?seconds=S&tag=T``: holds a pooled connection for ``SELECT
  SLEEP(S)``; records ``started`` (with the session's thread id),
  ``finished`` or ``cancelled``. With ``&deadline=D`` an outer ASGI layer
  (outside the middleware) gives the whole request D seconds: it records
  ``outer timeout`` only if the cancellation came back out of the app.
- ``POST /echo?tag=T``: reads the body with ``await request.body()`` and
  answers its length and SHA-256.
- ``GET /stream?chunks=N&tag=T``: a response that has started streaming,
  one chunk every 50 ms, whatever the client does; records ``stream
  finished`` or ``stream cancelled``.
- ``GET /stats``: the pool's stats.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples import fastapi_app

from mysqlpool import Pool
from mysqlpool.asgi import ASGIApp, Receive, Scope, Send


class Events:
    """Appends one JSON object a line to a file, flushed at once."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the process)

    def record(self, event: str, tag: str | None, **details: Any) -> None:
        self._file.write(json.dumps({"event": event, "tag": tag, **details}) + "\n")
        self._file.flush()


class SlowStream(Response):
    """A streamed response that never listens for the disconnect itself."""

    def __init__(self, chunks: int, events: Events, tag: str | None) -> None:
        super().__init__()
        self.chunks, self.events, self.tag = chunks, events, tag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for index in range(self.chunks):
                chunk = b"%d\n" % index
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            self.events.record("stream cancelled", self.tag)
            raise
        self.events.record("stream finished", self.tag)


def build_app(events: Events, *, middleware: bool, **pool_options: Any) -> FastAPI:
    app = fastapi_app.create_app(
        os.environ["MYSQL_DSN"], cancel_on_disconnect=middleware, **pool_options
    )

    @app.get("/slow")
    async def slow(conn: fastapi_app.Conn, seconds: float, tag: str) -> dict[str, Any]:
        events.record("started", tag, thread_id=conn.thread_id())
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT SLEEP(%s)", (seconds,))
                await cur.fetchone()
        except asyncio.CancelledError:
            events.record("cancelled", tag)
            raise
        events.record("finished", tag)
        return {"tag": tag}

    @app.post("/echo")
    async def echo(request: Request, tag: str) -> dict[str, Any]:
        body = await request.body()
        events.record("echoed", tag, length=len(body))
        return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.get("/stream")
    async def stream(chunks: int, tag: str) -> Response:
        return SlowStream(chunks, events, tag)

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        pool: Pool = request.app.state.pool
        return {k: v for k, v in dataclasses.asdict(pool.stats()).items() if k != "hosts"}

    return app


def with_deadline(app: ASGIApp, events: Events) -> ASGIApp:
    """An outer layer that gives a request ``?deadline=D`` seconds in all."""

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode()) if scope["type"] == "http" else {}
        if "deadline" not in query:
            await app(scope, receive, send)
            return
        tag = query.get("tag", [None])[0]
        try:
            await asyncio.wait_for(app(scope, receive, send), float(query["deadline"][0]))
        except asyncio.TimeoutError:
            events.record("outer timeout", tag)
            await send({"type": "http.response.start", "status": 504, "headers": []})
            await send({"type": "http.response.body", "body": b"deadline"})
            return
        events.record("outer returned", tag)

    return outer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("events")
    parser.add_argument("--no-middleware", action="store_true")
    parser.add_argument("options", nargs="*", help="pool options, name=integer")
    args = parser.parse_intermixed_args()
    options = {name: int(value) for name, value in (o.split("=", 1) for o in args.options)}
    events = Events(args.events)
    app = with_deadline(build_app(events, middleware=not args.no_middleware, **options), events)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # a client may connect as soon as the port is printed
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    print(f"port {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
