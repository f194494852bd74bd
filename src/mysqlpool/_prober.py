"""The prober: a task that retries each host that is down once its backoff
ends, so a server rejoins without waiting for an acquire to need it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ._clock import Clock
from ._hosts import Host, HostSet

__all__ = ["Prober"]


class Prober:
    """Runs while some host is down, from :meth:`start` until :meth:`stop`.

    Args:
        probe: opens a connection to a host that is due (the pool keeps it
            if it has room); it reports the outcome to the host's health.
    """

    __slots__ = ("_clock", "_hostset", "_pool_name", "_probe", "_running", "task")

    def __init__(
        self,
        hostset: HostSet,
        clock: Clock,
        probe: Callable[[Host], Awaitable[None]],
        pool_name: str,
    ) -> None:
        self._hostset = hostset
        self._clock = clock
        self._probe = probe
        self._pool_name = pool_name
        self._running = False  # between start() and stop()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._running = True
        self.wake()

    def wake(self) -> None:
        """Make sure the task runs if a host is down (a no-op otherwise)."""
        if self._running and self.task is None and self._hostset.next_retry() is not None:
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"mysqlpool host prober {self._pool_name}"
            )

    def stop(self) -> None:
        self._running = False
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        hostset, clock = self._hostset, self._clock
        try:
            while True:
                retry_at = hostset.next_retry()
                if retry_at is None:
                    return
                delay = retry_at - clock.now()
                if delay > 0:
                    await clock.sleep(delay)
                for host in hostset.due(clock.now()):
                    await self._probe(host)
        finally:
            self.task = None
