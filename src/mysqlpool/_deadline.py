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
