"""Helpers for testing code that uses mysqlpool.

:class:`ManualClock` is a clock that only moves when told to. Give it to a
pool (``Pool(dsn, clock=clock)``) and ``clock.advance(seconds)`` takes the
pool past a ``recycle``, a ``max_lifetime``, a ``leak_timeout``, a host's
backoff or a reaper pass at once, without sleeping::

    clock = ManualClock()
    async with Pool(dsn, recycle=60, clock=clock) as pool:
        async with pool.acquire() as conn: ...
        clock.advance(61)          # the idle connection is now past recycle
        async with pool.acquire() as conn: ...   # a new one

Everything of the pool's that waits on time waits on this clock, acquire
timeouts included: with a manual clock an acquire that has to wait for a
connection waits until another task returns one or the clock is advanced
past its timeout. Network I/O (connect, ping, reset) still runs in real
time, bounded by whatever is left of its deadline on this clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

__all__ = ["ManualClock"]


class _ManualTimer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock for tests: ``now()`` changes only through :meth:`advance`.

    Args:
        start: the time it starts at (seconds; only differences matter).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        # (when, order of scheduling, timer): timers due at the same time
        # run in the order they were set, as on an event loop.
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """The current time on this clock."""
        return self._now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> _ManualTimer:
        """Run ``callback(*args)`` when the clock reaches ``when``.

        A time already reached runs it at the next loop iteration.
        """
        timer = _ManualTimer(when, callback, args)
        if when <= self._now:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been advanced by ``seconds``."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_at(self._now + seconds, _resolve, done)
        try:
            await done
        finally:
            timer.cancel()

    def advance(self, seconds: float) -> None:
        """Move time forward and run, in order, every timer that came due.

        Timers run synchronously, inside this call; tasks they wake (a
        sleeping reaper, a waiter that timed out) run at the next await.

        Raises:
            ValueError: ``seconds`` is negative (a monotonic clock never goes back).
        """
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; got advance({seconds!r})")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            self._fire(timer)
        self._now = target

    @property
    def pending(self) -> int:
        """Timers set and not yet run or cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    @staticmethod
    def _fire(timer: _ManualTimer) -> None:
        if not timer.cancelled:
            timer.cancelled = True  # runs once
            timer.callback(*timer.args)

    def __repr__(self) -> str:
        return f"<ManualClock now={self._now} pending={self.pending}>"


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
