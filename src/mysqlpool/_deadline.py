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
from collections.abc import Awaitable, Callable
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


async def within(
    step: Awaitable[Any], seconds: float | None, discard: Callable[[Any], None] | None = None
) -> Any:
    """``asyncio.wait_for(step, seconds)`` for an I/O step of the pool, minus
    its ways of losing a cancellation.

    Raises ``asyncio.TimeoutError`` after ``seconds`` (None: no limit),
    having cancelled the step and waited for it. When the caller is
    cancelled, the step is cancelled and waited for, and the
    ``CancelledError`` goes on, whatever the step did with its own
    cancellation (aiomysql may turn it into an OperationalError: read here,
    so asyncio logs no "exception never retrieved").

    Python 3.11's ``wait_for`` returns the step's result when the caller is
    cancelled in the loop pass the step ends in, and drops the cancellation;
    so does aiomysql's own ``wait_for`` around its TCP connect. An acquire
    cancelled because its client hung up then ran its statement anyway
    (benchmarks/http_load.py's burst). So on Python 3.11+ a cancellation of
    the caller requested while the step ran is honoured even if something
    below swallowed it. Whenever a result is dropped so, ``discard(result)``
    is called with it (it closes a connection just opened, for one).
    """
    task = asyncio.current_task()
    before = _cancel_requests(task)
    if seconds is None:
        result = await step
    else:
        result = await _bounded_step(step, seconds, discard)
    if _cancel_requests(task) > before:
        _drop(result, discard)
        raise asyncio.CancelledError
    return result


async def _bounded_step(
    step: Awaitable[Any], seconds: float, discard: Callable[[Any], None] | None
) -> Any:
    loop = asyncio.get_running_loop()
    inner = asyncio.ensure_future(step)
    inner.add_done_callback(_read_outcome)
    woken = loop.create_future()  # by the step's end or by the timer, whichever first
    inner.add_done_callback(lambda _: _wake(woken))
    timer = loop.call_later(seconds, _wake, woken)
    try:
        await woken
    except asyncio.CancelledError:
        await _stop(inner, discard)
        raise
    finally:
        timer.cancel()
    if not inner.done():
        await _stop(inner, discard)
        raise asyncio.TimeoutError
    return inner.result()


async def _stop(inner: asyncio.Future[Any], discard: Callable[[Any], None] | None) -> None:
    """Cancel the step, wait for it to end, and drop what it produced."""
    inner.cancel()
    await asyncio.wait((inner,))
    if not inner.cancelled() and inner.exception() is None:
        _drop(inner.result(), discard)


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


def _drop(result: Any, discard: Callable[[Any], None] | None) -> None:
    if discard is not None and result is not None:
        discard(result)


def _cancel_requests(task: asyncio.Task[Any] | None) -> int:
    """How many cancellations of ``task`` are pending (0 before Python 3.11,
    which does not count them)."""
    cancelling = getattr(task, "cancelling", None)
    return 0 if cancelling is None else int(cancelling())


def _read_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def bounded(
    step: Awaitable[Any],
    deadline: float | None,
    clock: Clock,
    doing: str,
    discard: Callable[[Any], None] | None = None,
) -> Any:
    """Await one I/O step within ``deadline`` (on ``clock``; None: no limit);
    ``discard`` as for :func:`within`.

    Raises:
        DeadlineExceeded: the deadline passed, before or during the step.
    """
    if deadline is None:
        return await within(step, None, discard)
    remaining = deadline - clock.now()
    if remaining <= 0:
        if asyncio.iscoroutine(step):
            step.close()
        raise DeadlineExceeded(doing)
    try:
        return await within(step, remaining, discard)
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
