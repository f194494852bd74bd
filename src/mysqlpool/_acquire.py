"""The acquire: what ``pool.acquire()`` returns, and the I/O a checkout may need.

An idle connection is taken at once; otherwise the acquirer waits for one
(first come, first served), opens one in a slot it was granted, or pings one
idle past ``pre_ping``'s threshold, all under one deadline. Every change to
the pool's books is a :class:`~mysqlpool._state.PoolState` method; this
module only awaits between them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any

from ._connector import Connector
from ._deadline import DeadlineExceeded, bounded
from ._entry import Entry
from ._health import brief
from ._state import SLOT, PoolState
from .errors import PoolClosed

__all__ = ["AcquireContext", "open_into_slot"]

logger = logging.getLogger("mysqlpool")


class AcquireContext:
    """What ``pool.acquire()`` returns: await it, or use it with ``async with``.

    Its attributes are set by :meth:`Pool.acquire`, which fills them in
    without calling the class (see there); nothing else should touch them.
    """

    __slots__ = ("conn", "connector", "start", "state", "timeout")

    def __init__(
        self,
        state: PoolState,
        connector: Connector,
        start: Callable[[], None] | None,
        timeout: float | None,
    ) -> None:
        self.state = state
        self.connector = connector
        # Starts the pool's background tasks (the first wait calls it); None
        # once they run, so a wait under load makes no call for it.
        self.start = start
        self.timeout = timeout
        self.conn: Any = None  # the connection it checked out, until its __aexit__

    def __await__(self) -> Generator[Any, None, Any]:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> Any:
        """The acquire: an idle connection at once, else a wait in this one
        coroutine (a second one per acquire is measurable: benchmarks/)."""
        state = self.state
        # With nothing idle (all in use, under load) the wait begins at once.
        if state.idle:
            # What PoolState.try_acquire does, one call shallower: this is
            # every acquire that finds a connection idle.
            now = state.now()
            taken = state.grant(now, True)  # with no_io: an Entry or None
            if taken is not None:
                conn = self.conn = state.checkout(taken, now, None)  # type: ignore[arg-type]
                return conn
        if state.closed:
            raise PoolClosed(f"pool {state.name} is closed")
        start = self.start
        if start is not None:
            start()
        timeout = self.timeout
        now_, ping_after = state.now, state.ping_after
        # From here on the acquire waits or does I/O: whatever was idle and
        # usable without a ping, the fast path above took.
        now = began = now_()
        deadline = None if timeout is None else now + timeout
        try:
            while True:
                grant = state.grant(now, False)
                if grant is None:
                    fut = state.waiters.add(deadline)
                    try:
                        grant = await fut
                        if state.closed:  # handed over in the loop pass close() began in
                            raise PoolClosed(f"pool {state.name} closed while waiting")
                    except BaseException:
                        # The accept handshake: whatever reached the future
                        # before we could take it goes back, so a timed-out or
                        # cancelled waiter leaks nothing.
                        if fut.done() and not fut.cancelled() and fut.exception() is None:
                            state.decline(fut.result())
                        else:
                            state.waiters.withdraw(fut)
                        raise
                    if grant is not SLOT and ping_after is None:
                        # A connection handed over: its checkout counts from then.
                        conn = self.conn = state.checkout(grant, grant.idle_since, began)
                        return conn
                if grant is SLOT:
                    entry = await open_into_slot(state, self.connector, deadline)
                elif ping_after is not None and not await _ping_ok(state, grant, deadline):  # type: ignore[arg-type]
                    now = now_()
                    continue
                else:
                    entry = grant  # type: ignore[assignment]
                conn = self.conn = state.checkout(entry, now_(), began)
                return conn
        except DeadlineExceeded as exc:
            raise state.timed_out(exc, timeout, began) from None

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        # A plain method returning the release's awaitable: no coroutine of
        # its own on every ``async with`` (benchmarks/hotpath.py).
        conn, self.conn = self.conn, None
        return self.state.give_back(conn, exc, False)


async def open_into_slot(state: PoolState, connector: Connector, deadline: float | None) -> Entry:
    """Open a connection into a slot reserved in ``state``; in use by the
    caller once open, the slot given back on any failure."""
    try:
        conn, host = await connector.connect(deadline)
    except BaseException:
        state.abandon_slot()
        raise
    return state.opened(conn, host)


async def _ping_ok(state: PoolState, entry: Entry, deadline: float | None) -> bool:
    """Ping a checked-out connection idle past ``pre_ping``'s threshold;
    False (it is closed) when the ping fails."""
    clock, threshold = state.clock, state.ping_after
    assert threshold is not None
    if clock.now() - entry.idle_since < threshold:
        return True
    try:
        await bounded(state.driver.ping(entry.conn), deadline, clock, "pinging a connection")
    except DeadlineExceeded:
        state.check_in(entry, "ping failed")
        raise
    except Exception as exc:
        state.check_in(entry, "ping failed")
        state.health.failed(entry.host, f"ping failed: {brief(exc)}")
        logger.info("pool %s: discarded a connection that failed its ping: %s", state.name, exc)
        return False
    except BaseException:
        state.check_in(entry, "cancelled during ping")
        raise
    return True
