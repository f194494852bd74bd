"""The pool's side tasks, and KILL QUERY for a holder that stopped waiting.

Every task a pool starts is kept here until it ends, so ``close()`` can
await them and nothing is left pending; ``terminate()`` cancels them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

from ._driver import Driver
from ._params import ConnectParams

__all__ = ["KILL_TIMEOUT", "SideTasks", "join_stopped", "kill_query"]

logger = logging.getLogger("mysqlpool")

#: Bound on each step of a KILL QUERY side connection (connect, then the KILL).
KILL_TIMEOUT = 5.0


class SideTasks:
    """Tasks started on the pool's behalf, referenced until they end."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def join(self, timeout: float | None) -> None:
        """Wait for them; those still running after ``timeout`` s are cancelled."""
        if not self._tasks:
            return
        tasks = set(self._tasks)
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():  # the join itself was cancelled
                    raise

    def __len__(self) -> int:
        return len(self._tasks)


async def kill_query(driver: Driver, params: ConnectParams, thread_id: int, pool_name: str) -> None:
    """Stop the statement a cancelled holder left running on its server."""
    try:
        await driver.kill_query(params, thread_id, KILL_TIMEOUT)
    except Exception as exc:  # e.g. 1094: the statement already ended
        logger.debug("pool %s: KILL QUERY %s failed: %s", pool_name, thread_id, exc)


async def join_stopped(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Await background tasks that were told to stop (cancelled), so none is
    left pending; their own failures were logged by them."""
    for task in tasks:
        if task is not None and not task.done():
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():  # the caller itself was cancelled
                    raise
            except Exception:
                pass
