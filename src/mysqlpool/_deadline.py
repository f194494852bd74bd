"""One deadline per acquire, and the I/O steps bounded by it.

An acquire takes its deadline from the pool's clock once, when it first has
to wait or do I/O, and every step after that (queueing, connecting to one
host then another, pinging) gets only what is left of it. A step that runs
out raises :class:`DeadlineExceeded`, which the pool turns into
:class:`~mysqlpool.PoolTimeout` with the numbers that explain it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ._clock import Clock

__all__ = ["DeadlineExceeded", "bounded", "within"]


class DeadlineExceeded(Exception):
    """An acquire's deadline passed while it was ``doing`` something (internal)."""

    def __init__(self, doing: str) -> None:
        super().__init__(doing)
        self.doing = doing


async def within(
    step: Awaitable[Any], seconds: float | None, on_orphan: Callable[[Any], None] | None = None
) -> Any:
    """``asyncio.wait_for(step, seconds)``, for an I/O step of the pool.

    When the caller is cancelled, wait_for cancels the step and waits for it;
    aiomysql may turn that cancellation into an OperationalError, which
    nobody would read, and asyncio would log "Task exception was never
    retrieved". The step's outcome is read here instead.

    A step can succeed in the same instant its caller is cancelled or times
    out: its result is then dropped by asyncio (by wait_for from Python 3.12
    on; by the step's task itself when the cancel reaches it as it returns).
    ``on_orphan`` gets such a result (an open connection, say) to dispose of
    it, instead of leaving it to the garbage collector.
    """
    if seconds is None:
        return await step
    started = False
    produced: list[Any] = []

    async def keeping() -> Any:
        nonlocal started
        started = True
        result = await step
        produced.append(result)  # before anything can drop it
        return result

    task = asyncio.ensure_future(keeping())
    task.add_done_callback(_read_outcome)
    try:
        return await asyncio.wait_for(task, seconds)
    except BaseException:
        if not started:
            # Cancelled before the step began: nothing was opened. The step
            # never will begin now, so close it ("never awaited" otherwise).
            task.cancel()
            if asyncio.iscoroutine(step):
                step.close()
        elif produced and on_orphan is not None:
            on_orphan(produced[0])
        raise


def _read_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def bounded(
    step: Awaitable[Any],
    deadline: float | None,
    clock: Clock,
    doing: str,
    on_orphan: Callable[[Any], None] | None = None,
) -> Any:
    """Await one I/O step within ``deadline`` (on ``clock``; None: no limit).

    ``on_orphan``: as :func:`within`.

    Raises:
        DeadlineExceeded: the deadline passed, before or during the step.
    """
    if deadline is None:
        return await step
    remaining = deadline - clock.now()
    if remaining <= 0:
        if asyncio.iscoroutine(step):
            step.close()
        raise DeadlineExceeded(doing)
    try:
        return await within(step, remaining, on_orphan)
    except asyncio.TimeoutError:
        raise DeadlineExceeded(doing) from None
