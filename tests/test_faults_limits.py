"""At the server's max_connections (error 1040), acquire fails fast and leaks nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

import drivers
from conftest import PoolFactory, scalar
from mysqlpool import PoolTimeout
from privateserver import PrivateServer, missing_tools

ERR = drivers.errors()  # the run's driver's error classes

MAX_CONNECTIONS = 10  # the smallest MariaDB accepts


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private server that takes 10 connections; yields a non-admin DSN for it.

    (An account with CONNECTION ADMIN may take one connection beyond the
    limit, so the pool logs in as a plain user.)
    """
    problem = missing_tools()
    if problem is not None:
        pytest.skip(f"no private server: {problem}")
    server = PrivateServer(
        Path(tmp_path_factory.mktemp("smallserver")),
        options=(f"--max-connections={MAX_CONNECTIONS}",),
    )
    try:
        server.start()
        admin = pymysql.connect(host="127.0.0.1", port=server.port, user="root", database="test")
        try:
            with admin.cursor() as cur:
                cur.execute("CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'app-pw'")
                cur.execute("GRANT SELECT ON test.* TO 'app'@'127.0.0.1'")
        finally:
            admin.close()
        yield drivers.on_driver(f"mysql://app:app-pw@127.0.0.1:{server.port}/test")
    finally:
        server.remove()


@pytest.mark.slow
async def test_too_many_connections_fails_fast_and_frees_its_slot(
    make_pool: PoolFactory, small_server: str
) -> None:
    pool = await make_pool(small_server, pool_size=5, max_overflow=15, timeout=2)
    held = [await pool.acquire() for _ in range(MAX_CONNECTIONS)]

    began = time.monotonic()
    outcomes = await asyncio.gather(
        *(pool.acquire(timeout=2) for _ in range(4)), return_exceptions=True
    )
    elapsed = time.monotonic() - began

    assert all(isinstance(o, ERR.OperationalError) for o in outcomes), outcomes
    assert {o.args[0] for o in outcomes if isinstance(o, ERR.OperationalError)} == {1040}
    assert elapsed < 2.0  # refused at once, not after the acquire timeout
    stats = pool.stats()
    assert (stats.open, stats.in_use, stats.opening) == (MAX_CONNECTIONS, MAX_CONNECTIONS, 0)
    pool.check_invariants()

    # When a connection comes back, the next acquire gets it.
    await pool.release(held.pop())
    async with pool.acquire(timeout=2) as conn:
        assert await scalar(conn, "SELECT 1") == 1
    for conn in held:
        await pool.release(conn)


@pytest.mark.slow
async def test_waiters_at_the_limit_keep_their_deadline(
    make_pool: PoolFactory, small_server: str
) -> None:
    # The pool's own bound equals the server's: the extra acquirers queue in
    # the pool and time out at their deadline, not later.
    pool = await make_pool(small_server, pool_size=MAX_CONNECTIONS, max_overflow=0)
    held = [await pool.acquire() for _ in range(MAX_CONNECTIONS)]
    began = time.monotonic()
    with pytest.raises(PoolTimeout):
        await pool.acquire(timeout=0.3)
    assert time.monotonic() - began < 0.3 + 0.5
    for conn in held:
        await pool.release(conn)
