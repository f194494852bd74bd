"""What CancelOnDisconnect costs per request, in instructions (callgrind).

A stand-in server calls a minimal ASGI app (it awaits once, as a handler
awaits its query, then answers) ``N`` times, one request at a time, bare or
wrapped in the middleware::

    for k in bare mw; do for n in 200 1200; do
      valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$k.$n \
        python benchmarks/asgi_overhead.py $k $n 2>&1 | grep Collected
    done; done

Instructions per request = (I(1200) - I(200)) / 1000 for each; their
difference is the middleware's. One request at a time, so every extra pass
of the event loop it causes is counted whole; under load a pass serves many
requests.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from mysqlpool.asgi import CancelOnDisconnect, Message, Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(0)  # a handler awaits something: its query
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


async def one_request(wrapped: Any) -> None:
    """What a server does for one request, minus the sockets."""
    answered = asyncio.Event()
    pending: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await answered.wait()  # as a server does until the response is sent
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            answered.set()

    await wrapped({"type": "http"}, receive, send)


async def main(kind: str, n: int) -> None:
    wrapped: Any = CancelOnDisconnect(app) if kind == "mw" else app
    for _ in range(n):
        await one_request(wrapped)
    await asyncio.sleep(0)  # the last listener ends


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
