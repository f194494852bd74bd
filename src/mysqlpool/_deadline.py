"""One deadline per acquire, and the I/O steps bounded by it.

An acquire takes its deadline from the pool's clock once, when it first has
to wait or do I/O, and every step after that (queueing, connecting to one
host then another, pinging) gets only what is left of it. A step that runs
out raises :class:`DeadlineExceeded`, which the pool turns into
:class:`~mysqlpool.PoolTimeout` with the numbers that explain it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from ._clock import Clock

__all__ = [
    "RETURN_FLOOR",
    "RETURN_LIMIT",
    "DeadlineExceeded",
    "bounded",
    "limited",
    "return_limit",
    "within",
]

_T = TypeVar("_T")

#: How long a return's reset or rollback may take when the pool has no
#: ``timeout`` (None) to bound it with.
RETURN_LIMIT = 30.0
#: ...and at least, whatever the pool's ``timeout`` (0 means "never wait for
#: a connection", not "never wait for the server").
RETURN_FLOOR = 1.0


class DeadlineExceeded(Exception):
    """An acquire's deadline passed while it was ``doing`` something (internal)."""

    def __init__(self, doing: str) -> None:
        super().__init__(doing)
        self.doing = doing


async def within(step: Awaitable[Any], seconds: float | None) -> Any:
    """``asyncio.wait_for(step, seconds)``, for an I/O step of the pool.

    When the caller is cancelled, wait_for cancels the step and waits for it;
    aiomysql may turn that cancellation into an OperationalError, which
    nobody would read, and asyncio would log "Task exception was never
    retrieved". The step's outcome is read here instead.
    """
    if seconds is None:
        return await step
    task = asyncio.ensure_future(step)
    task.add_done_callback(_read_outcome)
    return await asyncio.wait_for(task, seconds)


def _read_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def bounded(step: Awaitable[Any], deadline: float | None, clock: Clock, doing: str) -> Any:
    """Await one I/O step within ``deadline`` (on ``clock``; None: no limit).

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
        return await within(step, remaining)
    except asyncio.TimeoutError:
        raise DeadlineExceeded(doing) from None


def return_limit(timeout: float | None) -> float:
    """How long the pool's reset or rollback of a returned connection may
    take, in seconds: the pool's ``timeout`` (at least :data:`RETURN_FLOOR`),
    else :data:`RETURN_LIMIT`.
    A return that takes longer closes the connection: a server that doesn't
    answer, or one still waiting for something (data for a ``LOAD DATA
    LOCAL`` the client refused), must not hold up the holder's ``async
    with`` exit, nor keep a slot busy."""
    return RETURN_LIMIT if timeout is None else max(timeout, RETURN_FLOOR)


if sys.version_info >= (3, 11):

    async def limited(step: Awaitable[_T], seconds: float) -> _T:
        """Await ``step`` in the current task, cancelled after ``seconds``
        (then ``TimeoutError``). Unlike :func:`within` it makes no task: a
        timer is all it costs, for the I/O a return awaits on the caller's
        own task (a task per return measured +112k instructions per query
        with a ROLLBACK on each: benchmarks/dropin.py, pool-rollback)."""
        async with asyncio.timeout(seconds):
            return await step

else:  # pragma: no cover - Python 3.10 has no asyncio.timeout

    async def limited(step: Awaitable[_T], seconds: float) -> _T:
        """Await ``step``, cancelled after ``seconds`` (then ``TimeoutError``)."""
        result: _T = await within(step, seconds)
        return result
