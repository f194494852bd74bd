"""Polling for a state the pool (or the server) reports, shared by the tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import pytest

from mysqlpool import Pool


def pool_tasks(pool: Pool, kind: str = "") -> list[asyncio.Task[object]]:
    """The pool's background tasks still running (reaper, prober, KILL QUERY...),
    found by their names: ``mysqlpool <kind> <pool name>``."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith(f"mysqlpool {kind}")
        and task.get_name().endswith(pool.name)
        and not task.done()
    ]


async def until(
    predicate: Callable[[], bool | Awaitable[bool]], what: str = "", timeout: float = 5.0
) -> None:
    """Poll ``predicate`` (sync or async) until true; fail the test after ``timeout`` s.

    Tests never sleep to order events: they wait for a state the pool itself
    reports. A sync predicate is rechecked after ``sleep(0)`` first, so a state
    reached in a few loop iterations is seen at once, then every 1 ms; an
    awaitable one (a server round trip) every 10 ms.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    spins = 0
    while True:
        result = predicate()
        round_trip = False
        if inspect.isawaitable(result):
            round_trip = True
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"condition not reached within {timeout} s: {what or predicate}")
        if round_trip:
            await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(0 if spins < 200 else 0.001)
            spins += 1
