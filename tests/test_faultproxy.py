"""The fault proxy itself: each mode does what it says, and closing it leaks nothing.

Raw sockets through the proxy to the real server: MariaDB speaks first (its
greeting packet), so every mode can be seen from the client side alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from conftest import scalar
from faultproxy import FaultProxy
from mysqlpool import Pool, parse_dsn
from polling import until

PoolFactory = Callable[..., Awaitable[Pool]]

# A handshake packet header is 4 bytes; MariaDB's greeting is far longer.
GREETING_AT_LEAST = 40


@pytest_asyncio.fixture
async def proxy(mysql_dsn: str) -> AsyncIterator[FaultProxy]:
    params = parse_dsn(mysql_dsn)
    async with FaultProxy(params.host, params.port) as fault_proxy:
        yield fault_proxy


async def connect(
    proxy: FaultProxy,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def silent_for(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when nothing (not even EOF) arrives on ``reader`` for ``seconds``."""
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except asyncio.TimeoutError:
        return True
    return False


def test_dsn_keeps_everything_but_host_and_port() -> None:
    proxy = FaultProxy("127.0.0.1", 3306)
    proxy.port = 40001
    assert (
        proxy.dsn("mysql://root:pw@db.example:3306/test?charset=utf8mb4")
        == "mysql://root:pw@127.0.0.1:40001/test?charset=utf8mb4"
    )
    assert proxy.dsn("mysql://db.example/test") == "mysql://127.0.0.1:40001/test"


async def test_pass_through_carries_a_pool_and_counts_connections(
    proxy: FaultProxy, mysql_dsn: str, make_pool: PoolFactory
) -> None:
    pool = await make_pool(proxy.dsn(mysql_dsn), pool_size=1)
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT 6 * 7") == 42
        assert (proxy.accepted, proxy.open) == (1, 1)
    await pool.clear()
    await until(lambda: proxy.open == 0, "proxy saw the pool's connection close")
    assert proxy.accepted == 1


async def test_refuse_stops_listening_until_pass_through(proxy: FaultProxy) -> None:
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    await proxy.pass_through()
    reader, writer = await connect(proxy)
    try:
        assert len(await reader.read(1024)) >= GREETING_AT_LEAST
    finally:
        writer.close()
        await writer.wait_closed()


async def test_blackhole_accepts_but_never_answers_nor_closes(proxy: FaultProxy) -> None:
    proxy.blackhole()
    reader, writer = await connect(proxy)
    try:
        writer.write(b"\x01\x00\x00\x00\x0e")  # a COM_PING nobody will answer
        await writer.drain()
        assert await silent_for(reader, 0.3)
        assert (proxy.accepted, proxy.open) == (1, 1)
    finally:
        writer.close()
        await writer.wait_closed()
    await until(lambda: proxy.open == 0, "blackholed connection released")


async def test_reset_all_sends_rst_to_current_connections(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    try:
        assert len(await reader.read(1024)) >= GREETING_AT_LEAST
        proxy.reset_all()
        with pytest.raises(ConnectionResetError):
            await reader.read(1024)
    finally:
        writer.close()
    await until(lambda: proxy.open == 0, "reset connection forgotten")


async def test_latency_delays_each_chunk(proxy: FaultProxy) -> None:
    proxy.latency(0.3)
    began = time.monotonic()
    reader, writer = await connect(proxy)
    try:
        assert len(await reader.read(1024)) >= GREETING_AT_LEAST
        assert time.monotonic() - began >= 0.3
    finally:
        writer.close()
        await writer.wait_closed()


async def test_stall_after_forwards_n_bytes_then_holds_the_rest(proxy: FaultProxy) -> None:
    proxy.stall_after(10)
    reader, writer = await connect(proxy)
    try:
        assert await reader.readexactly(10)
        assert await silent_for(reader, 0.3)
        await proxy.pass_through()
        assert len(await reader.read(1024)) >= GREETING_AT_LEAST - 10  # the held rest
    finally:
        writer.close()
        await writer.wait_closed()


async def test_closing_the_proxy_closes_what_it_holds(mysql_dsn: str) -> None:
    params = parse_dsn(mysql_dsn)
    async with FaultProxy(params.host, params.port) as proxy:
        proxy.blackhole()
        held_reader, held_writer = await connect(proxy)
        await proxy.pass_through()
        reader, writer = await connect(proxy)
        await until(lambda: proxy.open == 2, "both connections accepted")
    try:
        assert proxy.open == 0
        # Both see the proxy close its side (whatever greeting got through, then EOF).
        assert await held_reader.read() == b""
        await reader.read()
        assert reader.at_eof()
    finally:
        for w in (held_writer, writer):
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
