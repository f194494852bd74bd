"""Stop serving requests nobody is waiting for: :class:`CancelOnDisconnect`.

An ASGI server (uvicorn, Hypercorn...) does not cancel a handler whose
client hung up: the handler keeps its pooled connection and runs its
statement to the end, for nobody, while the requests behind it queue for the
connection. Under a retry storm that takes a service down. This middleware
cancels the handler instead, as soon as the server reports the disconnect;
the pool then closes the connection and, with ``kill_query_on_cancel`` (the
default), sends ``KILL QUERY`` so the server stops the statement too.

Pure ASGI: it imports no framework, and ``import mysqlpool`` does not import
it. With Starlette or FastAPI::

    from mysqlpool.asgi import CancelOnDisconnect

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(CancelOnDisconnect)

or wrap any ASGI application: ``app = CancelOnDisconnect(app)``.

How it shares the request's ``receive``: the server reports a disconnect
only through ``receive()``, which the application also reads the body
from. So the middleware reads it for both, in a task of its own, and hands
the application every body message untouched, in order, when it asks for
one: ``await request.body()`` works as without it. It reads one message
ahead at most while the body is still coming (the server's own flow control
keeps the rest), and once the body is complete it keeps listening: the next
message can only be the disconnect. So a handler that is not reading a body
in progress (an upload) is cancelled when it next reads, not at once.

What it never does:

- cancel a response that has started: once the application sent
  ``http.response.start`` (a streaming response under way), a disconnect is
  left to the application and the server, as without the middleware;
- swallow a cancellation that comes from elsewhere (the server shutting
  down, an outer timeout): the handler is cancelled with it and the
  ``CancelledError`` goes on; only the cancellation it caused itself ends
  quietly, as the client is gone and there is no one to answer;
- touch lifespan or websocket traffic, which passes straight through.

The handler runs in a task of its own (so that the middleware can cancel it
without cancelling the server's task), with a copy of the request's
context variables.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "CancelOnDisconnect", "Message", "Receive", "Scope", "Send"]

logger = logging.getLogger("mysqlpool.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CancelOnDisconnect:
    """ASGI middleware: cancel a request's handler when its client
    disconnects before the response starts.

    Args:
        app: the ASGI application to wrap (``app.add_middleware`` passes it).
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(receive, send)
        # ensure_future: an ASGI app returns an awaitable (in practice a coroutine).
        handler = asyncio.ensure_future(self.app(scope, exchange.receive, exchange.send))
        listener = asyncio.get_running_loop().create_task(exchange.listen(handler))
        try:
            await _join(handler)
        finally:
            # Not awaited: it ends at its next step, and awaiting it would
            # cost every request a pass of the event loop.
            listener.cancel()
            listener.add_done_callback(_log_failure)
        if exchange.cancelled_handler and handler.cancelled():
            # Ours: the client is gone and nobody is left to answer.
            logger.debug(
                "cancelled %s %s: the client disconnected", scope.get("method"), scope.get("path")
            )
            return
        handler.result()  # the handler's own error, or a cancellation that was not ours


async def _join(handler: asyncio.Future[None]) -> None:
    """Wait for the handler's task to end; if the wait is cancelled (the
    server's task was), cancel the handler, wait for it, and re-raise."""
    ended = asyncio.get_running_loop().create_future()
    handler.add_done_callback(functools.partial(_resolve, ended))
    try:
        await ended  # cancelling this wait leaves the handler running
    except asyncio.CancelledError:
        handler.cancel()
        # The handler gets to run its cleanup (give its connection back)
        # before the cancellation goes on.
        await asyncio.wait((handler,))
        if not handler.cancelled() and handler.exception() is not None:
            logger.warning("request handler failed while cancelled: %r", handler.exception())
        raise


def _resolve(ended: asyncio.Future[None], _: object) -> None:
    if not ended.done():
        ended.set_result(None)


def _log_failure(listener: asyncio.Future[None]) -> None:
    if not listener.cancelled() and listener.exception() is not None:
        logger.warning("reading the request failed: %r", listener.exception())


class _Exchange:
    """One request's messages between the server and the application."""

    __slots__ = (
        "_arrived",
        "_pending",
        "_receive",
        "_send",
        "_taken",
        "cancelled_handler",
        "disconnected",
        "started",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive  # the server's: read by listen() only
        self._send = send
        # Messages read from the server, not yet taken by the application.
        self._pending: collections.deque[Message] = collections.deque()
        self._arrived = asyncio.Event()  # set when _pending or disconnected changes
        self._taken = asyncio.Event()  # set when the application takes a message
        self.disconnected = False  # the server reported http.disconnect
        self.started = False  # the application sent http.response.start
        self.cancelled_handler = False  # listen() cancelled the handler

    async def listen(self, handler: asyncio.Future[None]) -> None:
        """Read the server's messages for the application until the
        disconnect, and cancel ``handler`` if it comes before the response
        started."""
        pending = self._pending
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                self._arrived.set()
                if not self.started and not handler.done():
                    self.cancelled_handler = True
                    handler.cancel()
                return
            pending.append(message)
            self._arrived.set()
            # While the body is still coming, read on only once the
            # application took this part: buffering it here would defeat
            # the server's flow control (a large upload held in memory).
            while message.get("more_body", False) and pending:
                self._taken.clear()
                await self._taken.wait()

    async def receive(self) -> Message:
        """The application's ``receive()``: the server's messages in order,
        then ``http.disconnect`` for every call once the client is gone."""
        while not self._pending and not self.disconnected:
            self._arrived.clear()
            await self._arrived.wait()  # a cancelled wait takes nothing
        if self._pending:
            message = self._pending.popleft()
            self._taken.set()
            return message
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """The application's ``send()``: the server's, noting when the response starts."""
        if message["type"] == "http.response.start":
            self.started = True  # before the await: a response under way is left alone
        await self._send(message)
