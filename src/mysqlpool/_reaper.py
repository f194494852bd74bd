"""The reaper: a background task that retires idle connections past their
age (or whose server hung up) and keeps ``min_size`` connections open.

It only times the passes; what a pass does is the pool's: ``reap`` closes
what must go (a state change, no await), ``refill`` opens what is missing.
A refill that fails backs off like a failed host does, so a pool whose
server is away doesn't hammer it every pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ._backoff import backoff_delay
from ._clock import Clock, Timer

__all__ = ["Reaper"]

logger = logging.getLogger("mysqlpool")


class Reaper:
    """Runs ``reap()`` then ``await refill()`` every ``period()`` seconds.

    Args:
        period: seconds until the next pass, asked before each (recycle="auto"
            is only known after the first connection).
        reap: the synchronous pass over idle connections.
        refill: opens connections up to ``min_size``; False when an open failed.
    """

    __slots__ = (
        "_clock",
        "_period",
        "_pool_name",
        "_reap",
        "_refill",
        "_since",
        "_timer",
        "_wakeup",
        "task",
    )

    def __init__(
        self,
        clock: Clock,
        period: Callable[[], float],
        reap: Callable[[], None],
        refill: Callable[[], Awaitable[bool]],
        pool_name: str,
    ) -> None:
        self._clock = clock
        self._period = period
        self._reap = reap
        self._refill = refill
        self._pool_name = pool_name
        self.task: asyncio.Task[None] | None = None
        self._since = 0.0  # when the current sleep began
        self._wakeup: asyncio.Future[None] | None = None  # ends the current sleep
        self._timer: Timer | None = None  # resolves _wakeup

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"mysqlpool reaper {self._pool_name}"
        )

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.task is not None:
            self.task.cancel()

    def reschedule(self) -> None:
        """The period changed (``recycle="auto"`` learnt a server's
        ``wait_timeout``): the current sleep ends by the new period, counted
        from when it began. Before that, the first sleep was a minute."""
        wakeup = self._wakeup
        if wakeup is None or wakeup.done():
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._clock.call_at(self._since + self._period(), _wake, wakeup)

    async def _sleep(self) -> None:
        clock = self._clock
        self._since = clock.now()
        wakeup = self._wakeup = asyncio.get_running_loop().create_future()
        self._timer = clock.call_at(self._since + self._period(), _wake, wakeup)
        try:
            await wakeup
        finally:
            self._timer.cancel()

    async def _run(self) -> None:
        clock = self._clock
        failures = 0  # refills failed in a row
        retry_at = -float("inf")  # no refill before this, while the server is away
        while True:
            await self._sleep()
            try:
                self._reap()
                if clock.now() >= retry_at:
                    if await self._refill():
                        failures = 0
                    else:
                        failures += 1
                        retry_at = clock.now() + backoff_delay(failures)
            except Exception:
                logger.exception("pool %s: reaper pass failed; retrying next pass", self._pool_name)


def _wake(wakeup: asyncio.Future[None]) -> None:
    if not wakeup.done():
        wakeup.set_result(None)
