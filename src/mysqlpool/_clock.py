"""The pool's one time source.

Everything in a pool that depends on time reads it here: activity stamps
(recycle, max_lifetime, pre_ping), acquire deadlines, leak timers, host
backoff, the reaper's period and ``close(timeout)``. The default clock is the
monotonic one the event loop uses; a test passes a
:class:`mysqlpool.testing.ManualClock` instead and moves time forward itself,
so recycle or backoff can be shown without sleeping.

Only the time between two events is ever used, never the time of day.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["MONOTONIC", "Clock", "MonotonicClock", "Timer", "wait_until"]


class Timer(Protocol):
    """A callback scheduled by :meth:`Clock.call_at`."""

    def cancel(self) -> None:
        """Stop it from running (harmless once it ran)."""


class Clock(Protocol):
    """What a pool needs of time: now, run this at, and sleep."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Timer:
        """Run ``callback(*args)`` on the running loop once ``now() >= when``."""

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""


class MonotonicClock:
    """``time.monotonic()``, with the running event loop's timers.

    Timers are set relative to ``time.monotonic()`` rather than at
    ``loop.time()``, so the clock is right on any loop (uvloop's ``time()``
    is cached per iteration).
    """

    __slots__ = ()

    now = staticmethod(time.monotonic)

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Timer:
        delay = max(0.0, when - time.monotonic())
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "MonotonicClock()"


#: The clock of every pool that isn't given one.
MONOTONIC = MonotonicClock()


async def wait_until(fut: asyncio.Future[Any], clock: Clock, deadline: float | None) -> bool:
    """Wait for ``fut`` until ``deadline`` on ``clock`` (None: for as long as it
    takes), never cancelling it. True if it is done."""
    if fut.done():
        return True
    if deadline is None:
        await asyncio.wait({fut})
        return True
    gave_up: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    timer = clock.call_at(deadline, _settle, gave_up)
    try:
        await asyncio.wait({fut, gave_up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return fut.done()


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
