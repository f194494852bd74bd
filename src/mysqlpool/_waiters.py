"""The acquirers waiting for a connection, oldest first, and their deadlines.

Each waiter is a future. The pool resolves the oldest one still waiting
with what it hands over (a connection, or a slot to open one in); a waiter
whose deadline passes gets :class:`~mysqlpool._deadline.DeadlineExceeded`.
A waiter that stopped waiting (timed out, cancelled) is skipped, never
handed anything.

One timer serves every waiter whose deadline is not earlier than that of a
waiter queued before it, which is all of them when they share a timeout:
under load, thousands of per-waiter timers would pile up, cancelled, in
the event loop's heap. A waiter with a shorter timeout than one queued
before it gets a timer of its own.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable
from typing import Any

from ._clock import Clock, Timer
from ._deadline import DeadlineExceeded

__all__ = ["WaiterQueue"]

_WAITING = "waiting for a connection"


class WaiterQueue:
    """FIFO waiters with deadlines on ``clock``."""

    __slots__ = ("_clock", "_last_shared", "_timer", "_timer_at", "queue")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # (future, deadline) oldest first; the deadline is None when the
        # shared timer does not watch it (no timeout, or an own timer).
        # Resolved futures are dropped lazily, when they reach the front.
        # Others may read it, never change it: empty means nobody waits, so
        # the pool's check-in needs no call to know.
        self.queue: collections.deque[tuple[asyncio.Future[Any], float | None]] = (
            collections.deque()
        )
        # The latest deadline the shared timer watches: a later waiter with
        # an earlier deadline is out of its order.
        self._last_shared = -math.inf
        self._timer: Timer | None = None  # the shared timer, due at _timer_at
        self._timer_at = math.inf

    def add(self, deadline: float | None) -> asyncio.Future[Any]:
        """Queue a new waiter; its future gets what is handed over, or fails
        with DeadlineExceeded once ``deadline`` passes."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if deadline is None:
            self.queue.append((fut, None))
        elif deadline >= self._last_shared:
            self._last_shared = deadline
            self.queue.append((fut, deadline))
            if deadline < self._timer_at:
                self._arm(deadline)
        else:
            # Left to run even if the waiter is served first: it then finds
            # the future done. (A cancelled timer would stay in the event
            # loop's heap just as long.)
            self._clock.call_at(deadline, _expire, fut)
            self.queue.append((fut, None))
        return fut

    def withdraw(self, fut: asyncio.Future[Any]) -> None:
        """Take out a waiter that gave up before anything was handed to it."""
        queue = self.queue
        for index, (queued, _) in enumerate(queue):
            if queued is fut:
                del queue[index]
                break
        if not self.queue:
            self._last_shared = -math.inf

    def pop(self) -> asyncio.Future[Any] | None:
        """The oldest waiter still waiting, out of the queue; None if there is none.

        The caller must resolve it (``set_result``) before any ``await``.
        """
        queue = self.queue
        while queue:
            fut = queue.popleft()[0]
            if not fut.done():
                return fut
        self._last_shared = -math.inf
        return None

    def fail_all(self, make_error: Callable[[], BaseException]) -> None:
        """Fail every waiter, each with an error of its own (the pool is closing)."""
        while self.queue:
            fut = self.queue.popleft()[0]
            if not fut.done():
                fut.set_exception(make_error())
        self._last_shared = -math.inf
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def waiting(self) -> int:
        """How many are still waiting."""
        # tuple() copies in one step, so a scrape from another thread (a
        # metrics server) never iterates a deque being changed.
        return sum(1 for fut, _ in tuple(self.queue) if not fut.done())

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._clock.call_at(when, self._expire_due)

    def _expire_due(self) -> None:
        """The shared timer: fail every waiter whose deadline has passed.

        Its waiters were queued with non-decreasing deadlines, so the scan
        from the oldest stops at the first one still in time, and the timer
        is set again for it.
        """
        self._timer = None
        self._timer_at = math.inf
        now = self._clock.now()
        for fut, deadline in self.queue:
            if deadline is None or fut.done():
                continue
            if deadline > now:
                self._arm(deadline)
                return
            fut.set_exception(DeadlineExceeded(_WAITING))


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(DeadlineExceeded(_WAITING))
