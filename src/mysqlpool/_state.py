"""The pool's books and every change to them.

:class:`PoolState` holds what a pool owns (idle connections, checked-out
ones, slots, waiters, counters) and changes it only in its methods, each a
plain method with no ``await`` inside: on one event loop it runs to
completion, so no lock guards the books and a cancellation can only land
between two changes, never inside one.

The I/O those changes call for (connect, ping, reset) lives next door
(``_acquire``, ``_reset``) and is awaited between them; each I/O step has
one failure path that hands its slot back here.

Bookkeeping counts slots, not sockets: ``slots`` covers idle, checked out
and being-opened connections, is reserved before a connect starts and given
back on any failure.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from ._aging import Aging
from ._background import SideTasks, kill_query
from ._clock import Clock
from ._config import PoolOptions
from ._deadline import DeadlineExceeded
from ._driver import CLEAN, CLOSED, NEEDS_ROLLBACK, UNREAD_RESULT, Driver, unknown_after
from ._entry import Entry
from ._health import HostHealth
from ._hooks import Hooks
from ._hosts import Host, HostSet
from ._leaks import LeakDetector
from ._stats import PoolStats, imbalances
from ._waiters import WaiterQueue
from .errors import PoolClosed, PoolError, PoolTimeout

__all__ = ["DONE", "SLOT", "PoolState", "SlotGrant"]

logger = logging.getLogger("mysqlpool")

# How each reason for closing a connection counts in the stats. Recycled: it
# was healthy, the pool (or its user) just wanted it gone. Neither counter:
# the pool was full or closing. Anything else counts as discarded.
_RECYCLED = frozenset({"recycle", "max_lifetime", "rebalance", "cleared"})
_NOT_COUNTED = frozenset({"pool full", "pool closed"})
# Discarded, but with a known protocol state.
_DISCARDED_ON_REQUEST = "released with discard=True"
# Closed with a known protocol state: they say goodbye (COM_QUIT) first, so
# the server logs no aborted connection.
_GRACEFUL = _RECYCLED | _NOT_COUNTED | {_DISCARDED_ON_REQUEST}


class SlotGrant:
    """Hand-off value meaning "a slot is reserved for you: open a connection"."""


SLOT = SlotGrant()


class _Done:
    """An awaitable that is already done: what a release that needs no I/O
    gives ``async with`` to await, and what ``clear()`` returns so that
    ``await pool.clear()`` works."""

    __slots__ = ()

    # An exhausted iterator ends an await at once, with None, and stays
    # exhausted, so one serves every await; its own __iter__ returns it
    # without a Python frame.
    __await__ = staticmethod(iter(()).__iter__)


DONE: Awaitable[None] = _Done()  # type: ignore[assignment]

#: ``reset(state, entry)``: the reset on return, which ends in ``state.check_in``.
ResetThenCheckIn = Callable[["PoolState", Entry], Awaitable[None]]


class PoolState:
    """One pool's books. Others read its public attributes; only its
    methods change them."""

    # Slots, not an instance dict: attribute lookups on the hot path get
    # specialized by CPython 3.11+ (benchmarks/hotpath.py).
    __slots__ = (
        "acquires", "aging", "clock", "closed", "closed_total", "discarded_total", "drained",
        "driver", "extras", "health", "hooks", "hostset", "idle", "idle_get", "in_use", "known",
        "leaks", "max_size", "multi", "name", "now", "opened_total", "opening", "options",
        "ping_after", "pool_size", "recycled_total", "reset", "reset_mode", "side_tasks", "slots",
        "timeouts", "wait_time", "waiters",
    )

    def __init__(
        self,
        *,
        name: str,
        options: PoolOptions,
        clock: Clock,
        driver: Driver,
        aging: Aging,
        health: HostHealth,
        hostset: HostSet,
        hooks: Hooks | None,
        leaks: LeakDetector | None,
        reset: ResetThenCheckIn,
    ) -> None:
        self.name = name
        self.options = options
        self.clock = clock
        # The clock's reading, held as a plain callable: read on every
        # checkout and return (for the default clock, time.monotonic itself).
        self.now = clock.now
        self.driver = driver
        self.aging = aging
        self.health = health
        self.hostset = hostset
        self.multi = health.multi  # host placement matters only with several (read at check-in)
        self.hooks = hooks
        self.leaks = leaks
        # Per-use hooks or leak detection: what a checkout and a return do
        # besides the bookkeeping (one test on the hot path when there is
        # none; an on_connect or on_discard hook alone, as the SQLAlchemy
        # bridge sets, adds nothing there).
        self.extras = (hooks is not None and hooks.per_use) or leaks is not None
        self.reset = reset
        self.pool_size = options.pool_size
        self.max_size = options.max_size  # slots never exceed it (None: no limit)
        self.ping_after = options.pre_ping_after
        self.reset_mode = options.reset_on_return
        self.waiters = WaiterQueue(clock, options.max_waiting, name)
        self.side_tasks = SideTasks()  # KILL QUERY connections, awaited by close()

        # Idle connections, ready to hand out; never more than pool_size.
        # Invariant: while it holds any, no acquirer is waiting.
        self.idle: collections.deque[Entry] = collections.deque()
        self.idle_get = self.idle.pop if options.lifo else self.idle.popleft
        # Checked-out connections (and those handed to a waiter or coming
        # back), by connection: how a release tells ours from foreign ones.
        self.in_use: dict[Any, Entry] = {}
        # Every connection this pool opened and has not forgotten: tells a
        # second release apart from a foreign connection in the error message.
        self.known: weakref.WeakSet[Any] = weakref.WeakSet()
        self.slots = 0  # idle + in use + being opened; never above max_size
        self.opening = 0  # slots reserved for a connection not open yet
        self.closed = False  # no more acquires; connections close as they come back
        self.drained: asyncio.Future[None] | None = None  # set by watch_drain()

        self.opened_total = 0
        self.closed_total = 0
        self.recycled_total = 0
        self.discarded_total = 0
        self.acquires = 0
        self.timeouts = 0
        self.wait_time = 0.0

    # ------------------------------------------------------------ checkout

    def try_acquire(self) -> Any:
        """A usable idle connection, checked out; else None (no wait, no I/O)."""
        if not self.idle:
            return None  # the common miss, without reading the clock
        now = self.now()
        grant = self.grant(now, True)
        if not isinstance(grant, Entry):
            return None
        return self.checkout(grant, now, None)

    def grant(self, now: float, no_io: bool) -> Entry | SlotGrant | None:
        """Take a usable idle connection (into ``in_use``; its checkout marker
        was taken when it became free), or reserve a slot (not with
        ``no_io``), or say "wait" (None).

        Idle connections that are dead or too old are closed on the way;
        with ``no_io``, one that ``pre_ping`` would ping stops the search.
        Only called when no live waiter is queued ahead: the idle queue is
        empty while anyone waits, and a free slot is always handed to a
        waiter at once.
        """
        idle, ping_after = self.idle, self.ping_after
        while idle:
            if no_io and ping_after is not None:
                head = idle[-1] if self.options.lifo else idle[0]
                if now - head.idle_since >= ping_after:
                    return None  # acquire() pings it first
            entry = self.idle_get()
            reason = self.aging.unfit(entry, now, self.driver.probe(entry.conn))
            if reason is None:
                self.in_use[entry.conn] = entry
                return entry
            self.retire(entry, reason)
            self.free_slot()
        if no_io or (self.max_size is not None and self.slots >= self.max_size):
            return None
        self.slots += 1
        self.opening += 1
        return SLOT

    def checkout(self, entry: Entry, now: float, began: float | None) -> Any:
        """Hand ``entry`` (in ``in_use``, its marker taken) to its acquirer;
        ``began`` is when its acquirer started waiting, if it did."""
        conn = entry.conn
        self.aging.checked_out(entry, now)
        entry.returning = False
        self.acquires += 1
        if began is not None:
            self.wait_time += now - began
        if self.extras:
            if self.hooks is not None:
                self.hooks.checked_out(conn)
            if self.leaks is not None:
                self.leaks.watch(entry)
        return conn

    def decline(self, grant: Entry | SlotGrant) -> None:
        """A waiter that stopped waiting gives back what reached it anyway."""
        if isinstance(grant, Entry):
            self.check_in(grant, None)
        else:
            self.abandon_slot()

    def timed_out(
        self, exc: DeadlineExceeded, timeout: float | None, began: float | None
    ) -> PoolTimeout:
        """Count an acquire that ran out of time; the error it raises."""
        self.timeouts += 1
        if began is not None:
            self.wait_time += self.now() - began
        limit = ""
        if exc.doing == "waiting for a connection":
            limit = (
                f": all {self.slots} connections in use (pool_size={self.pool_size}"
                f" + max_overflow={self.options.max_overflow}), {self.waiters.waiting()} waiting"
            )
        return PoolTimeout(
            f"acquire timed out after {timeout} s {exc.doing}{limit}; pool {self.name}"
        )

    # ------------------------------------------------------------- opening

    def reserve(self, wanted: int) -> None:
        """Reserve ``wanted`` slots for connections about to be opened."""
        self.slots += wanted
        self.opening += wanted

    def abandon_slot(self) -> None:
        """A reserved slot's connection will not be opened after all."""
        self.opening -= 1
        self.free_slot()

    def opened(self, conn: Any, host: Host) -> Entry:
        """A connection opened into a reserved slot becomes the pool's, in use
        by whoever opened it.

        Raises:
            PoolClosed: the pool closed meanwhile (the connection is closed).
        """
        self.opening -= 1
        entry = self._register(conn, host)
        if self.closed:
            self.retire(entry, "pool closed")
            self.free_slot()
            raise PoolClosed(f"pool {self.name} closed while a connection was opening")
        self.in_use[conn] = entry
        return entry

    def adopt(self, conn: Any, host: Host) -> bool:
        """Keep a connection the prober opened, if the pool has room or in
        place of an idle one the policy no longer wants where it is, so an
        idle pool moves back too. False: the caller closes it."""
        if self.closed:
            return False
        if (self.max_size is None or self.slots < self.max_size) and len(
            self.idle
        ) < self.pool_size:
            self.slots += 1
            entry = self._register(conn, host)
            self.in_use[conn] = entry
            self.check_in(entry, None)
            return True
        misplaced = next((e for e in self.idle if not self.hostset.preferred(e.host)), None)
        if misplaced is None:
            return False
        self.idle.remove(misplaced)
        self.retire(misplaced, "rebalance")
        self.idle.append(self._register(conn, host))
        return True

    def _register(self, conn: Any, host: Host) -> Entry:
        self.opened_total += 1
        self.known.add(conn)
        host.open += 1
        if self.hooks is not None:
            self.hooks.connected(conn)
        now = self.now()
        entry = Entry(conn, host, now)
        entry.checkout_marker = self.driver.probe(conn)
        self.aging.opened(entry, now)
        return entry

    # -------------------------------------------------------------- return

    def give_back(self, conn: Any, error: BaseException | None, discard: bool) -> Awaitable[None]:
        """The release sequence, for ``release()`` and ``async with``.

        Takes the connection back and decides its fate now when that needs no
        I/O (the result is an awaitable already done); else returns the reset
        to await, which decides it when the reset ends.

        Raises:
            PoolError: ``conn`` is not checked out from this pool.
        """
        entry = self.in_use.get(conn)
        if entry is None or entry.returning:
            if entry is not None or conn in self.known:
                state = "was already released to"
            else:
                state = "was not acquired from"
            raise PoolError(f"connection {id(conn):#x} {state} pool {self.name}")
        entry.returning = True
        if self.extras:
            if self.leaks is not None:
                self.leaks.unwatch(entry)
            if self.hooks is not None:
                self.hooks.checked_in(conn)
        driver = self.driver
        probed = driver.probe(conn)
        state = driver.returned_state(conn, probed, entry.checkout_marker)
        if state is CLEAN and error is None and not discard and self.reset_mode != "reset":
            # The common return, decided at once: what the rules below
            # conclude for it, without asking them one by one.
            entry.checkout_marker = probed  # free again: the next holder's start
            self.check_in(entry, None)
            return DONE
        # Its protocol state is unknown when it is closed, when its holder
        # stopped with an error that leaves it so, or when a reply is unread.
        reason = None
        if state is CLOSED:
            reason = CLOSED
        elif error is not None:
            reason = unknown_after(driver, error)
        if reason is None and state is UNREAD_RESULT:
            reason = UNREAD_RESULT
        if error is not None or reason is not None:
            self.health.after_use(entry.host, conn, error)
        if reason is not None:
            if self.options.kill_query_on_cancel and driver.cancelled_mid_reply(conn):
                # The holder stopped waiting for its statement's reply; the
                # server is still running it. (Only a holder's statement: never
                # the pool's own ping or reset.)
                self.side_tasks.spawn(
                    kill_query(driver, entry.host.params, driver.thread_id(conn), self.name),
                    name=f"mysqlpool KILL QUERY {self.name}",
                )
        elif discard:
            reason = _DISCARDED_ON_REQUEST
        elif not self.closed and (
            self.reset_mode == "reset"
            or (self.reset_mode == "rollback" and state is NEEDS_ROLLBACK)
        ):
            return self.reset(self, entry)
        else:
            entry.checkout_marker = probed  # free again: the next holder's start
        self.check_in(entry, reason)
        return DONE

    def transaction_ended(self, conn: Any) -> None:
        """Its holder ended its transaction itself: from here, a return with
        no statement run since needs no rollback (see ``Pool.transaction_ended``)."""
        entry = self.in_use.get(conn)
        if entry is None or entry.returning:
            raise PoolError(f"connection {id(conn):#x} is not checked out from pool {self.name}")
        # The marker is what the return compares with: "nothing ran since".
        entry.checkout_marker = self.driver.probe(conn)

    def check_in(self, entry: Entry, reason: str | None) -> None:
        """Decide the fate of a connection coming back (or new, or declined
        by a waiter: anything in ``in_use`` that is free). The only place
        that does.

        Closed, and its slot freed for a waiter, when ``reason`` says so, the
        pool is closing, it is too old, or its host is down or no longer
        where the policy wants it; else handed to the oldest waiter; else
        queued if the queue has room; else closed as overflow.
        """
        if reason is None:
            if self.closed:
                reason = "pool closed"
            else:
                now = self.now()
                if now >= entry.expires_at:
                    reason = self.aging.reason(entry, now)
                elif self.multi and not self.hostset.preferred(entry.host):
                    # Its host went down, or a better one is up.
                    reason = "rebalance" if entry.host.up else "host down"
                else:
                    entry.idle_since = now  # free from now: the hand-over's time too
                    waiter = self.waiters.pop() if self.waiters.queue else None
                    if waiter is not None:
                        waiter.set_result(entry)  # it stays in use, by its next holder
                        return
                    if len(self.idle) < self.pool_size:
                        del self.in_use[entry.conn]
                        self.idle.append(entry)
                        return
                    reason = "pool full"
        del self.in_use[entry.conn]
        self.retire(entry, reason)
        self.free_slot()

    def free_slot(self) -> None:
        """A slot was given up: the oldest waiter takes it over, else it is freed."""
        waiter = None if self.closed or not self.waiters.queue else self.waiters.pop()
        if waiter is not None:
            self.opening += 1
            waiter.set_result(SLOT)
            return
        self.slots -= 1
        drained = self.drained
        if self.closed and self.slots == 0 and drained is not None and not drained.done():
            drained.set_result(None)

    def retire(self, entry: Entry, reason: str) -> None:
        """Close a connection and count why. (The caller frees its slot.)"""
        if reason in _RECYCLED:
            self.recycled_total += 1
        elif reason not in _NOT_COUNTED:
            self.discarded_total += 1
        LeakDetector.unwatch(entry)
        self.driver.close(entry.conn, graceful=reason in _GRACEFUL)
        entry.host.open -= 1
        self.closed_total += 1
        logger.debug("pool %s: closed a connection: %s", self.name, reason)
        if self.hooks is not None:
            self.hooks.discarded(entry.conn, reason)

    def retire_idle(self, reason_for: Callable[[Entry, float], str | None]) -> None:
        """Close the idle connections for which ``reason_for(entry, now)``
        gives a reason; the others keep their order."""
        now = self.now()
        kept: list[Entry] = []
        gone: list[tuple[Entry, str]] = []
        for entry in self.idle:
            reason = reason_for(entry, now)
            if reason is None:
                kept.append(entry)
            else:
                gone.append((entry, reason))
        if not gone:
            return
        self.idle.clear()
        self.idle.extend(kept)
        for entry, reason in gone:
            self.retire(entry, reason)
            self.free_slot()

    # ----------------------------------------------------------- shutdown

    def watch_drain(self) -> None:
        """From now on, ``drained`` is set once the pool is closed and no slot is taken."""
        self.drained = asyncio.get_running_loop().create_future()

    def shut(self) -> None:
        """No more acquires: waiters fail, idle connections close, and
        connections still checked out close as they come back."""
        self.closed = True
        name = self.name
        self.waiters.fail_all(lambda: PoolClosed(f"pool {name} closed while waiting"))
        self.retire_idle(lambda entry, now: "pool closed")
        if self.slots == 0 and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def close_checked_out(self) -> None:
        """Close the checked-out connections now, under their holders; their
        releases still free the slots."""
        for entry in self.in_use.values():
            self.driver.close(entry.conn, graceful=False)
        self.side_tasks.cancel()

    # ---------------------------------------------------------- inspection

    def stats(self) -> PoolStats:
        """A snapshot of gauges and counters (see :class:`PoolStats`)."""
        # tuple() copies in one step, so a scrape from another thread (a
        # metrics server) never iterates a collection being changed.
        idle = tuple(self.idle)
        in_use = tuple(self.in_use.values())
        return PoolStats(
            name=self.name,
            pool_size=self.pool_size,
            max_overflow=self.options.max_overflow,
            open=len(idle) + len(in_use),
            idle=len(idle),
            in_use=len(in_use),
            opening=self.opening,
            waiting=self.waiters.waiting(),
            opened=self.opened_total,
            closed=self.closed_total,
            recycled=self.recycled_total,
            discarded=self.discarded_total,
            acquires=self.acquires,
            timeouts=self.timeouts,
            wait_time=self.wait_time,
            overloaded=self.waiters.refused,
            hosts=self.hostset.stats(
                [entry.host for entry in idle], [entry.host for entry in in_use], self.now()
            ),
        )

    def imbalances(self) -> list[str]:
        """What is inconsistent in the books now (empty when they balance)."""
        return imbalances(self.stats(), slots=self.slots, closed=self.closed)
