"""A loopback TCP proxy that injects network faults between the pool and the server.

``tc netem`` is not available here, so latency, blackholes, resets and stalls
are made by putting this proxy between a pool and MariaDB::

    async with FaultProxy(host, port) as proxy:
        pool = await make_pool(proxy.dsn(mysql_dsn))
        proxy.blackhole()  # from now on nothing gets through

Modes are switched at run time and apply at once to new and current
connections: ``pass_through()``, ``refuse()``, ``blackhole()``,
``latency(seconds)``, ``stall_after(nbytes)``; ``reset_all()`` is a one-off
RST of every current connection. Each mode method replaces the previous one.
Closing the proxy closes every socket it holds and ends every task it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import urllib.parse
from types import TracebackType

__all__ = ["FaultProxy"]

_CHUNK = 65536


class _Link:
    """One client connection and, unless it was blackholed at accept, its upstream."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None


class FaultProxy:
    """Forward 127.0.0.1:``port`` to ``target_host:target_port``, with faults on demand.

    Counters: ``accepted`` (client connections accepted since start) and
    ``open`` (client connections the proxy holds now).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._blackhole = False
        self._latency = 0.0
        self._stall: int | None = None  # bytes server->client still allowed through
        self._flowing = asyncio.Event()  # cleared while a stall holds bytes back
        self._flowing.set()
        self._closing = False

    @property
    def open(self) -> int:
        """Client connections the proxy holds now."""
        return len(self._links)

    def dsn(self, base_dsn: str) -> str:
        """``base_dsn`` with its host and port replaced by the proxy's."""
        parts = urllib.parse.urlsplit(base_dsn)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    # ---------------------------------------------------------------- modes

    def _set(self, *, blackhole: bool = False, latency: float = 0.0) -> None:
        self._blackhole = blackhole
        self._latency = latency
        self._stall = None
        self._flowing.set()

    async def pass_through(self) -> None:
        """Forward everything, without delay; listen again if ``refuse()`` stopped it.

        The only async mode switch: listening again binds the same port.
        """
        self._set()
        await self._listen()

    def refuse(self) -> None:
        """Stop listening: new connections get ECONNREFUSED (a server that is down).

        Current connections are left as they are.
        """
        if self._server is not None:
            self._server.close()
            self._server = None

    def blackhole(self) -> None:
        """Accept new connections and hold them; stop forwarding on current ones.

        Bytes in either direction are read and discarded; nothing is ever
        forwarded, and no connection is closed (no FIN, no RST) while it lasts.
        """
        self._set(blackhole=True)

    def latency(self, seconds: float) -> None:
        """Delay every chunk by ``seconds`` in both directions, keeping their order."""
        self._set(latency=seconds)

    def stall_after(self, nbytes: int) -> None:
        """Forward ``nbytes`` more bytes server->client (over all connections), hold the rest.

        Held bytes are delivered if the mode is switched back by ``pass_through()``.
        """
        self._set()
        self._stall = nbytes
        self._flowing.clear()

    def reset_all(self) -> None:
        """Send an RST to every current client connection and drop its upstream."""
        for link in list(self._links):
            sock = link.client.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            link.client.transport.abort()
            if link.server is not None:
                link.server.transport.abort()

    # ------------------------------------------------------------ lifecycle

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._on_client, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> FaultProxy:
        await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening, close every connection, end every task."""
        self._closing = True
        self.refuse()
        await asyncio.sleep(0)  # let connections accepted just now start their task
        for link in list(self._links):
            link.client.transport.abort()
            if link.server is not None:
                link.server.transport.abort()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -------------------------------------------------------------- traffic

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            if not self._closing:  # accepted just before aclose(): drop it
                await self._serve(link, reader)
        except (asyncio.CancelledError, OSError):
            # Cancelled by aclose(), or the upstream refused: this task is
            # asyncio's client_connected_cb task and must end quietly.
            pass
        finally:
            self._links.discard(link)
            self._tasks.discard(task)
            writer.transport.abort()
            if link.server is not None:
                link.server.transport.abort()

    async def _serve(self, link: _Link, reader: asyncio.StreamReader) -> None:
        if self._blackhole:
            while await reader.read(_CHUNK):  # hold it: read, discard, never answer
                pass
            return
        server_reader, link.server = await asyncio.open_connection(*self.target)
        up = asyncio.ensure_future(self._pump(reader, link.server, to_client=False))
        down = asyncio.ensure_future(self._pump(server_reader, link.client, to_client=True))
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down in done and self._blackhole:
                await up  # the server left, but a blackhole sends no FIN to the client
        finally:
            for pump in (up, down):
                pump.cancel()
            await asyncio.gather(up, down, return_exceptions=True)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, to_client: bool
    ) -> None:
        """Copy ``src`` to ``dst`` chunk by chunk, applying the current mode."""
        with contextlib.suppress(OSError):
            while chunk := await src.read(_CHUNK):
                if self._latency:
                    await asyncio.sleep(self._latency)
                if to_client and self._stall is not None:
                    allowed = max(self._stall, 0)
                    self._stall -= min(allowed, len(chunk))
                    await self._deliver(dst, chunk[:allowed])
                    if len(chunk) > allowed:
                        await self._flowing.wait()
                        await self._deliver(dst, chunk[allowed:])
                else:
                    await self._deliver(dst, chunk)

    async def _deliver(self, dst: asyncio.StreamWriter, data: bytes) -> None:
        if data and not self._blackhole:
            dst.write(data)
            await dst.drain()
