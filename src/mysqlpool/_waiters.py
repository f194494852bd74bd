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

The queue also holds the pool's ``max_waiting`` rule: with that many
waiting, :meth:`WaiterQueue.add` refuses a newcomer with
:class:`~mysqlpool.PoolOverloaded` at once. Those still waiting are the
queued ones less the expired ones not yet taken out, which it counts, so
the rule costs no scan of the queue, a waiter that leaves makes room at
once, and the common changes (a waiter queued, one served) count nothing.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable
from typing import Any

from ._clock import Clock, Timer
from ._deadline import DeadlineExceeded
from .errors import PoolOverloaded

__all__ = ["WaiterQueue"]

_WAITING = "waiting for a connection"


class WaiterQueue:
    """FIFO waiters with deadlines on ``clock``."""

    __slots__ = (
        "_clock", "_expired", "_last_shared", "_limit", "_name", "_timer", "_timer_at", "queue",
        "refused",
    )

    def __init__(self, clock: Clock, max_waiting: int | None = None, name: str = "") -> None:
        self._clock = clock
        self._limit = max_waiting  # None: no limit
        self._name = name  # the pool's, for the refusal's message
        # Expired waiters still in the queue (their acquire takes them out
        # when it runs next, or pop() drops them): the others in the queue
        # are still waiting. Cancelled ones count as waiting until they
        # leave it, which their acquire does at once.
        self._expired = 0
        #: Acquirers refused because ``max_waiting`` were already waiting.
        self.refused = 0
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
        with DeadlineExceeded once ``deadline`` passes.

        Raises:
            PoolOverloaded: ``max_waiting`` are already waiting (nothing queued).
        """
        limit = self._limit
        if limit is not None and self.waiting() >= limit:
            self.refused += 1
            raise PoolOverloaded(
                f"acquire refused: {self.waiting()} already waiting for a connection"
                f" (max_waiting={limit}); pool {self._name}"
            )
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
            self._clock.call_at(deadline, self._expire, fut)
            self.queue.append((fut, None))
        return fut

    def withdraw(self, fut: asyncio.Future[Any]) -> None:
        """Take out a waiter that gave up before anything was handed to it."""
        if not fut.done():
            # Given up some other way than by its future (an exception
            # thrown into its acquire): no timer of its own may expire it later.
            fut.cancel()
        queue = self.queue
        for index, (queued, _) in enumerate(queue):
            if queued is fut:
                del queue[index]
                self._drop(fut)
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
            self._drop(fut)
        self._last_shared = -math.inf
        return None

    def fail_all(self, make_error: Callable[[], BaseException]) -> None:
        """Fail every waiter, each with an error of its own (the pool is closing)."""
        while self.queue:
            fut = self.queue.popleft()[0]
            if not fut.done():
                fut.set_exception(make_error())
        self._expired = 0
        self._last_shared = -math.inf
        self._cancel_timer()

    def _drop(self, fut: asyncio.Future[Any]) -> None:
        """A waiter that was done (expired or cancelled) has left the queue."""
        if not fut.cancelled():
            self._expired -= 1  # nothing else in the queue is done with an error

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def waiting(self) -> int:
        """How many are still waiting."""
        return len(self.queue) - self._expired

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
            self._expire(fut)

    def _expire(self, fut: asyncio.Future[Any]) -> None:
        """Fail one waiter whose deadline passed, if it is still waiting."""
        if not fut.done():
            self._expired += 1
            fut.set_exception(DeadlineExceeded(_WAITING))
