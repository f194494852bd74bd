"""One deadline per acquire, and the I/O steps bounded by it.

An acquire takes its deadline from the pool's clock once, when it first has
to wait or do I/O, and every step after that (queueing, connecting to one
host then another, pinging) gets only what is left of it. A step that runs
out raises :class:`DeadlineExceeded`, which the pool turns into
:class:`~mysqlpool.PoolTimeout` with the numbers that explain it.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import weakref
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



async def limited(step: Awaitable[_T], seconds: float) -> _T:
    """Await ``step`` in the current task, cancelled after ``seconds`` (then
    ``TimeoutError``), for the I/O a connection's return awaits on its
    caller's task.

    Unlike :func:`within` it makes no task, and unlike ``asyncio.timeout``
    no timer of its own: one timer per event loop watches every limited step
    (:class:`_Watchdog`). A task per return cost +112k client instructions
    per query with a ROLLBACK on each return, a timer per return +40k
    (benchmarks/dropin.py, pool-rollback).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    assert task is not None
    watchdog = _watchdog_of(loop)
    watchdog.watch(task, _now() + seconds)
    try:
        return await step
    except asyncio.CancelledError:
        if watchdog.forget(task) and not _still_cancelled(task):
            raise TimeoutError(f"took over {seconds} s") from None
        raise
    finally:
        watchdog.forget(task)


class _Watchdog:
    """Cancels the tasks whose :func:`limited` step overran its deadline,
    with one timer armed at the earliest deadline. It runs on its loop only
    and references neither the loop nor its timers, so the registry's weak
    key can go with the loop; a timer made stale by an earlier one is left to
    fire, harmlessly."""

    __slots__ = ("_armed_at", "_due", "_overran")

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}
        self._overran: set[asyncio.Task[Any]] = set()
        self._armed_at = math.inf

    def watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        self._due[task] = deadline
        if deadline < self._armed_at:
            self._arm(deadline)

    def forget(self, task: asyncio.Task[Any]) -> bool:
        """Stop watching ``task``; True if it overran (its cancel was ours)."""
        self._due.pop(task, None)
        if task not in self._overran:
            return False
        self._overran.discard(task)
        if sys.version_info >= (3, 11):
            task.uncancel()
        return True

    def _arm(self, when: float) -> None:
        asyncio.get_running_loop().call_later(max(0.0, when - _now()), self._fire, when)
        self._armed_at = when

    def _fire(self, when: float) -> None:
        if when == self._armed_at:
            self._armed_at = math.inf
        now = _now()
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                self._overran.add(task)
                task.cancel()
        if self._due:
            earliest = min(self._due.values())
            if earliest < self._armed_at:
                self._arm(earliest)


# One watchdog per event loop, gone with it; the last one used, at hand.
_WATCHDOGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)
_last: tuple[weakref.ref[asyncio.AbstractEventLoop], _Watchdog] | None = None
# The deadlines' clock (the event loop's timers run on it too).
_now = time.monotonic


def _watchdog_of(loop: asyncio.AbstractEventLoop) -> _Watchdog:
    global _last
    last = _last
    if last is not None and last[0]() is loop:
        return last[1]
    watchdog = _WATCHDOGS.get(loop)
    if watchdog is None:
        watchdog = _WATCHDOGS[loop] = _Watchdog()
    _last = (weakref.ref(loop), watchdog)
    return watchdog


def _still_cancelled(task: asyncio.Task[Any]) -> bool:
    """Someone else cancelled ``task`` too (Python 3.11+ counts cancels)."""
    return sys.version_info >= (3, 11) and task.cancelling() > 0
