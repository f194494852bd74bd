"""The pool: bounded, fair, and safe to cancel anywhere.

This module holds the pool's state and every change to it: grant a
connection or a slot, check out, check in, offer to a waiter, free a slot,
open, close. Each change is a plain method with no ``await`` inside: on one
event loop it runs to completion, so no lock guards the state and a
cancellation can only land between two changes, never inside one. The I/O
those changes call for (connect, ping, reset) is awaited between them, and
each I/O step has one failure path that gives its slot back.

Bookkeeping counts slots, not sockets: ``_slots`` covers idle, checked out
and being-opened connections, is reserved before a connect starts and given
back on any failure.

The rest lives next door, each in its module, and never touches the counts:
the options (``_config``), the waiters and their deadlines (``_waiters``),
opening connections across hosts (``_connector``), host health
(``_health``) and its prober (``_prober``), the reaper (``_reaper``), the
age rules (``_aging``), leak warnings (``_leaks``), hooks (``_hooks``),
side tasks and KILL QUERY (``_background``), and the driver (``_driver``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Literal

from ._aging import Aging
from ._background import SideTasks, join_stopped, kill_query
from ._clock import MONOTONIC, Clock, wait_until
from ._config import PoolOptions, ResetMode, check_seconds
from ._connector import Connector
from ._deadline import DeadlineExceeded, bounded
from ._driver import (
    CLEAN,
    CLOSED,
    NEEDS_ROLLBACK,
    UNREAD_RESULT,
    InitCallback,
    driver_for,
    unknown_after,
)
from ._dsn import resolve_params
from ._entry import Entry
from ._health import HostHealth, brief
from ._hooks import ConnectionHook, DiscardHook, Hooks, check_init
from ._hosts import Host, HostSet, LoadBalance, Target
from ._leaks import LeakDetector
from ._options import merge_dsn_options, split_pool_options
from ._params import ConnectParams
from ._prober import Prober
from ._reaper import Reaper
from ._stats import PoolStats, imbalances
from ._waiters import WaiterQueue
from .errors import PoolClosed, PoolError, PoolTimeout

__all__ = ["Pool", "create_pool"]

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

# acquire() builds its context with this instead of calling the class.
_new_object = object.__new__

# Marker meaning "no timeout argument given: use the pool's".
_UNSET: Any = object()


class _SlotGrant:
    """Hand-off value meaning "a slot is reserved for you: open a connection"."""


_SLOT = _SlotGrant()


class Pool:
    """An asyncio pool of aiomysql connections to a MySQL or MariaDB server,
    or to one of several (a Galera cluster, a primary with replicas).

    The pool's options (``pool_size``, ``max_overflow``, ``timeout``,
    ``recycle``, ``max_lifetime``, ``pre_ping``, ``reset_on_return``,
    ``min_size``, ``reaper_interval``, ``leak_timeout``, ``lifo``, ``name``,
    ``kill_query_on_cancel``, ``load_balance``, ``target``) are described in
    :class:`PoolOptions` (``pool.options``). Each may also be given in the
    DSN's query string (``?pool_size=10&recycle=auto``); one given both ways
    must agree.

    Args:
        dsn: ``mysql://user:password@host:port/db?option=value``, a
            :class:`ConnectParams`, or None to build one from ``connect_kwargs``.
        init: ``async def init(conn)`` run on every new connection (and after
            every reset with ``reset_on_return="reset"``, which wipes what it set).
        on_connect: ``hook(conn)`` called (synchronously) when a connection is opened.
        on_checkout: ``hook(conn)`` called when a connection is handed out.
        on_checkin: ``hook(conn)`` called when a connection is given back.
        on_discard: ``hook(conn, reason)`` called when the pool closes a
            connection (reason: ``"recycle"``, ``"max_lifetime"``,
            ``"pool full"``, ``"pool closed"``, ``"connection closed"``, ...).
            A hook that raises is logged and ignored.
        clock: the time source (default: the monotonic clock); tests pass a
            :class:`mysqlpool.testing.ManualClock` to move time themselves.
        connect_kwargs: other ``aiomysql.connect`` keywords.

    Raises:
        ValueError: for an option out of range or a malformed DSN (the message
            names the option and never shows the password).
    """

    # Slots, not an instance dict: attribute lookups on the hot path get
    # specialized by CPython 3.11+ (benchmarks/hotpath.py); __weakref__: the
    # Prometheus collector holds weak references to pools.
    __slots__ = (
        "__weakref__", "_acquires", "_aging", "_clock", "_closed", "_closed_total", "_connector",
        "_discarded_total", "_drained", "_driver", "_extras", "_fill_task", "_health", "_hooks",
        "_hostset", "_idle", "_idle_get", "_in_use", "_init", "_known", "_leaks", "_max",
        "_multi", "_name", "_now", "_opened_total", "_opening", "_options", "_params",
        "_ping_after", "_pool_size", "_prober", "_reaper", "_recycled_total", "_reset_mode",
        "_side_tasks", "_slots", "_started", "_terminated", "_timeout", "_timeouts", "_wait_time",
        "_waiters",
    )

    def __init__(
        self,
        dsn: str | ConnectParams | None = None,
        *,
        pool_size: int = 5,
        max_overflow: int | None = 10,
        timeout: float | None = 30.0,
        recycle: float | Literal["auto"] | None = "auto",
        max_lifetime: float | None = None,
        pre_ping: bool | float = False,
        reset_on_return: ResetMode | None = "rollback",
        min_size: int = 0,
        reaper_interval: float | None = None,
        init: InitCallback | None = None,
        leak_timeout: float | None = None,
        lifo: bool = False,
        name: str | None = None,
        kill_query_on_cancel: bool = True,
        on_connect: ConnectionHook | None = None,
        on_checkout: ConnectionHook | None = None,
        on_checkin: ConnectionHook | None = None,
        on_discard: DiscardHook | None = None,
        load_balance: LoadBalance = "failover",
        target: Target = "any",
        clock: Clock | None = None,
        **connect_kwargs: Any,
    ) -> None:
        given: dict[str, Any] = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "timeout": timeout,
            "recycle": recycle,
            "max_lifetime": max_lifetime,
            "pre_ping": pre_ping,
            "reset_on_return": reset_on_return,
            "min_size": min_size,
            "reaper_interval": reaper_interval,
            "leak_timeout": leak_timeout,
            "lifo": lifo,
            "name": name,
            "kill_query_on_cancel": kill_query_on_cancel,
            "load_balance": load_balance,
            "target": target,
        }
        if isinstance(dsn, str):
            dsn, from_dsn = split_pool_options(dsn)
            given = merge_dsn_options(given, from_dsn)
        options = self._options = PoolOptions(**given)
        params = self._params = resolve_params(dsn, connect_kwargs)
        name = self._name = options.name if options.name is not None else str(params)
        hooks = (on_connect, on_checkout, on_checkin, on_discard)
        # None when there are none: the hot path then skips them in one test.
        self._hooks = Hooks(name, *hooks) if any(h is not None for h in hooks) else None
        self._init = check_init(init)
        clock = self._clock = clock if clock is not None else MONOTONIC
        # The clock's reading, held as a plain callable: read on every
        # checkout and return (for the default clock, time.monotonic itself).
        self._now = clock.now
        driver = self._driver = driver_for(params)
        self._pool_size = options.pool_size
        self._timeout = options.timeout
        self._max = options.max_size  # slots never exceed it (None: no limit)
        self._ping_after = options.pre_ping_after
        self._reset_mode = options.reset_on_return
        self._aging = aging = Aging(options.recycle, options.max_lifetime)
        leak_timeout = options.leak_timeout
        self._leaks = None if leak_timeout is None else LeakDetector(clock, leak_timeout, name)
        # Hooks or leak detection: what a checkout and a return do besides
        # the bookkeeping (one test on the hot path when there is none).
        self._extras = self._hooks is not None or self._leaks is not None
        hostset = self._hostset = HostSet(params, options.load_balance, options.target)
        self._prober = Prober(hostset, clock, self._adopt_probe, name)
        self._health = health = HostHealth(
            hostset,
            clock,
            driver,
            name,
            on_down=lambda host: self._retire_idle(lambda entry, _: _host_down(entry, host)),
            wake_prober=self._prober.wake,
        )
        self._multi = health.multi  # host placement matters only with several (read at check-in)

        def reap_idle() -> None:  # a reaper pass: the checkout's test, between uses
            self._retire_idle(lambda entry, now: aging.unfit(entry, now, driver.probe(entry.conn)))

        self._reaper = reaper = Reaper(
            clock,
            functools.partial(aging.reaper_period, options.reaper_interval),
            reap_idle,
            functools.partial(self._fill_min_size, raise_errors=False),
            name,
        )
        self._connector = Connector(
            driver,
            health,
            aging,
            clock,
            self._init,
            check_state=health.multi or options.target != "any",
            connect_timeout=params.connect_timeout,
            pool_name=name,
            on_recycle_change=reaper.reschedule,
        )
        self._side_tasks = SideTasks()  # KILL QUERY connections, awaited by close()
        self._waiters = WaiterQueue(clock)

        # Idle connections, ready to hand out; never more than pool_size.
        # Invariant: while it holds any, no acquirer is waiting.
        self._idle: collections.deque[Entry] = collections.deque()
        self._idle_get = self._idle.pop if options.lifo else self._idle.popleft
        # Checked-out connections (and those handed to a waiter or coming
        # back), by connection: how release() tells ours from foreign ones.
        self._in_use: dict[Any, Entry] = {}
        # Every connection this pool opened and has not forgotten: tells a
        # second release apart from a foreign connection in the error message.
        self._known: weakref.WeakSet[Any] = weakref.WeakSet()
        # Slots taken: idle + in use + being opened. Never above _max.
        self._slots = 0
        # Slots reserved for a connection not open yet.
        self._opening = 0

        self._started = False  # open() ran (or the first acquire() did it)
        self._closed = False  # close() or terminate() began: no more acquires
        self._terminated = False
        self._drained: asyncio.Future[None] | None = None  # done once _slots is 0 after close
        self._fill_task: asyncio.Future[bool] | None = None  # open()'s min_size fill

        self._opened_total = 0
        self._closed_total = 0
        self._recycled_total = 0
        self._discarded_total = 0
        self._acquires = 0
        self._timeouts = 0
        self._wait_time = 0.0

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Start the reaper and open ``min_size`` connections. Idempotent.

        Raises:
            PoolClosed: the pool was closed (a closed pool never reopens).
            pymysql.err.MySQLError: the driver's error when a ``min_size``
                connection can't be opened (the pool stays open and the
                reaper keeps trying).
        """
        if self._closed:
            raise PoolClosed(f"pool {self._name} is closed; a closed pool can't be reopened")
        self._start()
        fill = self._fill_task
        if fill is None:
            fill = self._fill_task = asyncio.ensure_future(self._fill_min_size(raise_errors=True))
        try:
            await asyncio.shield(fill)
        except asyncio.CancelledError:
            if fill.cancelled() and self._closed:  # close() stopped the fill, not our caller
                raise PoolClosed(f"pool {self._name} closed while opening") from None
            raise
        except Exception:
            if self._fill_task is fill:
                self._fill_task = None  # the next open() tries again
            raise

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self._drained = asyncio.get_running_loop().create_future()
        self._reaper.start()
        self._prober.start()

    async def close(self, timeout: float | None = None) -> None:
        """Close the pool gracefully.

        Refuses new acquires (waiters get :class:`PoolClosed`), stops the
        reaper, closes idle connections, then waits up to ``timeout`` seconds
        (None: as long as it takes) for checked-out connections to come back,
        closing each as it does, and terminates those still out.
        """
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        clock = self._clock
        deadline = None if timeout is None else clock.now() + timeout
        self.close_nowait()
        background = [self._reaper.task, self._prober.task, self._fill_task]
        drained = self._drained
        if (
            drained is not None
            and not self._terminated
            and not await wait_until(drained, clock, deadline)
        ):
            logger.warning(
                "pool %s: %d connection(s) still checked out after %s s; closing them",
                self._name,
                len(self._in_use),
                timeout,
            )
            self.terminate()
        # KILL QUERY connections do real I/O: what is left of the timeout, in real time.
        remaining = None if deadline is None else max(0.0, deadline - clock.now())
        await self._side_tasks.join(remaining)
        await join_stopped(background)

    def close_nowait(self) -> None:
        """The synchronous half of :meth:`close`: refuse new acquires (waiters
        get :class:`PoolClosed`), stop the background tasks and close the idle
        connections, all now. Connections still checked out keep working and
        are closed as they come back; ``await close()`` later waits for them.
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        name = self._name
        self._waiters.fail_all(lambda: PoolClosed(f"pool {name} closed while waiting"))
        self._reaper.stop()
        self._prober.stop()
        if self._fill_task is not None:
            self._fill_task.cancel()
        self._retire_idle(lambda entry, now: "pool closed")
        if self._slots == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        logger.debug("pool %s: closing", name)

    def terminate(self) -> None:
        """Close every connection now, checked-out ones included.

        Their holders' next statement fails with the driver's error; their
        ``release()`` is accepted and just frees the slot.
        """
        self.close_nowait()
        self._terminated = True
        for entry in self._in_use.values():
            self._driver.close(entry.conn, graceful=False)
        self._side_tasks.cancel()

    async def __aenter__(self) -> Pool:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -------------------------------------------------------------- acquire

    def acquire(self, timeout: float | None = _UNSET) -> _AcquireContext:
        """Check out a connection: ``async with pool.acquire() as conn`` or
        ``conn = await pool.acquire()`` (then ``await pool.release(conn)``).

        ``timeout`` overrides the pool's wait limit for this call (None waits
        forever). Waiters are served first come, first served.

        Raises:
            PoolTimeout: no connection within the timeout.
            PoolClosed: the pool is closing or closed.
            pymysql.err.MySQLError: the driver's error if opening a new
                connection fails.
        """
        if timeout is _UNSET:
            # _AcquireContext(self, _UNSET) without the __init__ call: CPython
            # 3.11 doesn't specialize a class call (benchmarks/hotpath.py).
            ctx = _new_object(_AcquireContext)
            ctx._pool = self
            ctx._timeout = _UNSET
            return ctx
        return _AcquireContext(self, check_seconds("timeout", timeout, allow_zero=True))

    def try_acquire(self) -> Any:
        """A connection now, or None: never waits, never does I/O.

        Returns an idle connection that needs no ping (within ``pre_ping``'s
        threshold), checked out as by :meth:`acquire`; None when there is
        none (all in use, a new one would have to be opened, or the pool is
        not open). Give it back with :meth:`release`.
        """
        if not self._idle:
            return None  # the common miss, without reading the clock
        now = self._now()
        grant = self._grant(now, True)
        if not isinstance(grant, Entry):
            return None
        return self._checkout(grant, now, None)

    def _grant(self, now: float, no_io: bool) -> Entry | _SlotGrant | None:
        """Take a usable idle connection (into ``_in_use``; its checkout marker
        was taken when it became free), or reserve a slot (not with
        ``no_io``), or say "wait" (None).

        Idle connections that are dead or too old are closed on the way;
        with ``no_io``, one that ``pre_ping`` would ping stops the search.
        Only called when no live waiter is queued ahead: the idle queue is
        empty while anyone waits, and a free slot is always handed to a
        waiter at once.
        """
        idle, ping_after = self._idle, self._ping_after
        while idle:
            if no_io and ping_after is not None:
                head = idle[-1] if self._options.lifo else idle[0]
                if now - head.idle_since >= ping_after:
                    return None  # acquire() pings it first
            entry = self._idle_get()
            reason = self._aging.unfit(entry, now, self._driver.probe(entry.conn))
            if reason is None:
                self._in_use[entry.conn] = entry
                return entry
            self._retire(entry, reason)
            self._free_slot()
        if no_io or (self._max is not None and self._slots >= self._max):
            return None
        self._slots += 1
        self._opening += 1
        return _SLOT

    def _checkout(self, entry: Entry, now: float, began: float | None) -> Any:
        """Hand ``entry`` (in ``_in_use``, its marker taken) to its acquirer."""
        conn = entry.conn
        self._aging.checked_out(entry, now)
        entry.returning = False
        self._acquires += 1
        if began is not None:
            self._wait_time += now - began
        if self._extras:
            if self._hooks is not None:
                self._hooks.checked_out(conn)
            if self._leaks is not None:
                self._leaks.watch(entry)
        return conn

    async def _open_slot(self, deadline: float | None) -> Entry:
        """Open a connection into a slot the caller reserved (not yet in
        ``_in_use``); the slot is given back on any failure."""
        try:
            conn, host = await self._connector.connect(deadline)
        except BaseException:
            self._opening -= 1
            self._free_slot()
            raise
        self._opening -= 1
        entry = self._register(conn, host)
        if self._closed:
            self._retire(entry, "pool closed")
            self._free_slot()
            raise PoolClosed(f"pool {self._name} closed while a connection was opening")
        return entry

    def _register(self, conn: Any, host: Host) -> Entry:
        """A connection just opened becomes the pool's."""
        self._opened_total += 1
        self._known.add(conn)
        host.open += 1
        if self._hooks is not None:
            self._hooks.connected(conn)
        now = self._clock.now()
        entry = Entry(conn, host, now)
        entry.checkout_marker = self._driver.probe(conn)
        self._aging.opened(entry, now)
        return entry

    async def _ping_ok(self, entry: Entry, deadline: float | None) -> bool:
        """Ping a checked-out connection idle past ``pre_ping``'s threshold;
        False (it is closed) when the ping fails."""
        clock, threshold = self._clock, self._ping_after
        assert threshold is not None
        if clock.now() - entry.idle_since < threshold:
            return True
        try:
            await bounded(self._driver.ping(entry.conn), deadline, clock, "pinging a connection")
        except DeadlineExceeded:
            self._check_in(entry, "ping failed")
            raise
        except Exception as exc:
            self._check_in(entry, "ping failed")
            self._health.failed(entry.host, f"ping failed: {brief(exc)}")
            logger.info("pool %s: discarded a connection that failed its ping: %s", self._name, exc)
            return False
        except BaseException:
            self._check_in(entry, "cancelled during ping")
            raise
        return True

    # -------------------------------------------------------------- release

    async def release(
        self, conn: Any, *, discard: bool = False, error: BaseException | None = None
    ) -> None:
        """Give back a connection from ``await pool.acquire()`` (or :meth:`try_acquire`).

        Args:
            discard: close it instead of reusing it (its holder knows it is
                unfit: an ORM invalidated it, a session setting can't be undone).
            error: what ended its holder's use, if anything: a connection-loss
                error or an interruption (cancellation, timeout) discards it,
                since its protocol state can't be trusted.

        Raises:
            PoolError: ``conn`` did not come from this pool, or was already
                released.
        """
        await self._give_back(conn, error, discard)

    def _give_back(self, conn: Any, error: BaseException | None, discard: bool) -> Awaitable[None]:
        """The release sequence, for :meth:`release` and ``async with``.

        Takes the connection back and decides its fate now when that needs no
        I/O (the result is an awaitable already done); else returns the reset
        to await, which decides it when the reset ends.
        """
        entry = self._in_use.get(conn)
        if entry is None or entry.returning:
            if entry is not None or conn in self._known:
                state = "was already released to"
            else:
                state = "was not acquired from"
            raise PoolError(f"connection {id(conn):#x} {state} pool {self._name}")
        entry.returning = True
        if self._extras:
            if self._leaks is not None:
                self._leaks.unwatch(entry)
            if self._hooks is not None:
                self._hooks.checked_in(conn)
        driver = self._driver
        probed = driver.probe(conn)
        state = driver.returned_state(conn, probed, entry.checkout_marker)
        if state is CLEAN and error is None and not discard and self._reset_mode != "reset":
            # The common return, decided at once: what the rules below
            # conclude for it, without asking them one by one.
            entry.checkout_marker = probed  # free again: the next holder's start
            self._check_in(entry, None)
            return _DONE
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
            self._health.after_use(entry.host, conn, error)
        if reason is not None:
            if self._options.kill_query_on_cancel and driver.cancelled_mid_reply(conn):
                # The holder stopped waiting for its statement's reply; the
                # server is still running it. (Only a holder's statement: never
                # the pool's own ping or reset.)
                self._side_tasks.spawn(
                    kill_query(driver, entry.host.params, driver.thread_id(conn), self._name),
                    name=f"mysqlpool KILL QUERY {self._name}",
                )
        elif discard:
            reason = _DISCARDED_ON_REQUEST
        elif not self._closed and (
            self._reset_mode == "reset"
            or (self._reset_mode == "rollback" and state is NEEDS_ROLLBACK)
        ):
            return self._reset_then_check_in(entry)
        else:
            entry.checkout_marker = probed  # free again: the next holder's start
        self._check_in(entry, reason)
        return _DONE

    async def _reset_then_check_in(self, entry: Entry) -> None:
        reason = None
        conn = entry.conn
        try:
            if self._reset_mode == "rollback":
                await self._driver.rollback(conn)
            else:
                await self._driver.reset_session(conn, self._params, self._init)
            entry.checkout_marker = self._driver.probe(conn)  # after the reset's statements
        except Exception as reset_error:
            reason = "reset failed"
            logger.info(
                "pool %s: discarded a connection whose reset failed: %s", self._name, reset_error
            )
        except BaseException:
            self._check_in(entry, "cancelled during reset")
            raise
        self._check_in(entry, reason)

    def _check_in(self, entry: Entry, reason: str | None) -> None:
        """Decide the fate of a connection coming back (or new, or declined
        by a waiter: anything in ``_in_use`` that is free). The only place
        that does.

        Closed, and its slot freed for a waiter, when ``reason`` says so, the
        pool is closing, it is too old, or its host is down or no longer
        where the policy wants it; else handed to the oldest waiter; else
        queued if the queue has room; else closed as overflow.
        """
        if reason is None:
            if self._closed:
                reason = "pool closed"
            else:
                now = self._now()
                if now >= entry.expires_at:
                    reason = self._aging.reason(entry, now)
                elif self._multi and not self._hostset.preferred(entry.host):
                    # Its host went down, or a better one is up.
                    reason = "rebalance" if entry.host.up else "host down"
                else:
                    waiter = self._waiters.pop() if self._waiters.queue else None
                    if waiter is not None:
                        waiter.set_result(entry)  # it stays in use, by its next holder
                        return
                    if len(self._idle) < self._pool_size:
                        del self._in_use[entry.conn]
                        entry.idle_since = now
                        self._idle.append(entry)
                        return
                    reason = "pool full"
        del self._in_use[entry.conn]
        self._retire(entry, reason)
        self._free_slot()

    def _free_slot(self) -> None:
        """A slot was given up: the oldest waiter takes it over, else it is freed."""
        waiter = None if self._closed or not self._waiters.queue else self._waiters.pop()
        if waiter is not None:
            self._opening += 1
            waiter.set_result(_SLOT)
            return
        self._slots -= 1
        drained = self._drained
        if self._closed and self._slots == 0 and drained is not None and not drained.done():
            drained.set_result(None)

    def _retire(self, entry: Entry, reason: str) -> None:
        """Close a connection and count why. (The caller frees its slot.)"""
        if reason in _RECYCLED:
            self._recycled_total += 1
        elif reason not in _NOT_COUNTED:
            self._discarded_total += 1
        LeakDetector.unwatch(entry)
        self._driver.close(entry.conn, graceful=reason in _GRACEFUL)
        entry.host.open -= 1
        self._closed_total += 1
        logger.debug("pool %s: closed a connection: %s", self._name, reason)
        if self._hooks is not None:
            self._hooks.discarded(entry.conn, reason)

    def _retire_idle(self, reason_for: Callable[[Entry, float], str | None]) -> None:
        """Close the idle connections for which ``reason_for(entry, now)``
        gives a reason; the others keep their order."""
        now = self._clock.now()
        kept: list[Entry] = []
        gone: list[tuple[Entry, str]] = []
        for entry in self._idle:
            reason = reason_for(entry, now)
            if reason is None:
                kept.append(entry)
            else:
                gone.append((entry, reason))
        if not gone:
            return
        self._idle.clear()
        self._idle.extend(kept)
        for entry, reason in gone:
            self._retire(entry, reason)
            self._free_slot()

    # ------------------------------------------------------ background work

    async def _fill_min_size(self, *, raise_errors: bool) -> bool:
        """Open connections until ``min_size`` are open, all at once.

        Returns False when an open failed (and ``raise_errors`` is off).
        """
        wanted = self._options.min_size - self._slots
        if wanted <= 0 or self._closed:
            return True
        self._slots += wanted
        self._opening += wanted

        async def open_spare() -> None:
            entry = await self._open_slot(None)
            self._in_use[entry.conn] = entry
            self._check_in(entry, None)

        spares = [open_spare() for _ in range(wanted)]
        results = await asyncio.gather(*spares, return_exceptions=True)
        ok = True
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, PoolClosed):
                if raise_errors:
                    raise result
                ok = False
                logger.warning("pool %s: could not open a connection: %s", self._name, result)
        return ok

    async def _adopt_probe(self, host: Host) -> None:
        """The prober's turn on a host that is down: keep its connection if
        the pool has room, or in place of an idle one the policy no longer
        wants there, so an idle pool moves back too."""
        conn = await self._connector.probe(host)
        if conn is None:
            return
        if self._closed:
            self._driver.close(conn, graceful=True)
            return
        if (self._max is None or self._slots < self._max) and len(self._idle) < self._pool_size:
            self._slots += 1
            entry = self._register(conn, host)
            self._in_use[conn] = entry
            self._check_in(entry, None)
            return
        misplaced = next((e for e in self._idle if not self._hostset.preferred(e.host)), None)
        if misplaced is None:
            self._driver.close(conn, graceful=True)
            return
        self._idle.remove(misplaced)
        self._retire(misplaced, "rebalance")
        self._idle.append(self._register(conn, host))

    # ---------------------------------------------------------- inspection

    @classmethod
    def from_env(cls, variable: str = "MYSQL_DSN", **options: Any) -> Pool:
        """A pool for the DSN in environment variable ``variable`` (default ``MYSQL_DSN``).

        Pool options may be in the DSN's query string (``?pool_size=10``);
        ``options`` are the other :class:`Pool` arguments.

        Raises:
            ValueError: the variable is unset or empty, or its DSN is malformed
                (the message names the variable, never the password).
        """
        dsn = os.environ.get(variable, "")
        if not dsn.strip():
            raise ValueError(f"environment variable {variable} is not set (expected a DSN)")
        try:
            return cls(dsn.strip(), **options)
        except ValueError as exc:
            raise ValueError(f"{variable}: {exc}") from None

    @property
    def name(self) -> str:
        """How logs, errors and stats name this pool (never shows the password)."""
        return self._name

    @property
    def params(self) -> ConnectParams:
        """The connection parameters every connection is opened with."""
        return self._params

    @property
    def options(self) -> PoolOptions:
        """The pool's options, checked, as it uses them."""
        return self._options

    @property
    def size(self) -> int:
        """``pool_size``: how many idle connections the queue keeps."""
        return self._pool_size

    @property
    def closed(self) -> bool:
        """True once ``close()`` or ``terminate()`` began."""
        return self._closed

    @property
    def recycle(self) -> float | None:
        """The recycle age in use (for ``"auto"``, None until the first connection)."""
        return self._aging.recycle

    def __len__(self) -> int:
        """Idle connections in the queue now."""
        return len(self._idle)

    def clear(self) -> Awaitable[None]:
        """Close every idle connection now (checked-out ones are left alone).

        They count as recycled, with the reason ``"cleared"``. Returns an
        awaitable that is already done, so ``await pool.clear()`` works too.
        """
        self._retire_idle(lambda entry, now: "cleared")
        return _DONE

    def stats(self) -> PoolStats:
        """A snapshot of gauges and counters (see :class:`PoolStats`)."""
        # tuple() copies in one step, so a scrape from another thread (a
        # metrics server) never iterates a collection being changed.
        idle = tuple(self._idle)
        in_use = tuple(self._in_use.values())
        return PoolStats(
            name=self._name,
            pool_size=self._pool_size,
            max_overflow=self._options.max_overflow,
            open=len(idle) + len(in_use),
            idle=len(idle),
            in_use=len(in_use),
            opening=self._opening,
            waiting=self._waiters.waiting(),
            opened=self._opened_total,
            closed=self._closed_total,
            recycled=self._recycled_total,
            discarded=self._discarded_total,
            acquires=self._acquires,
            timeouts=self._timeouts,
            wait_time=self._wait_time,
            hosts=self._hostset.stats(
                [entry.host for entry in idle], [entry.host for entry in in_use], self._clock.now()
            ),
        )

    def check_invariants(self) -> None:
        """Check that the pool's books balance; for tests and debugging.

        Raises:
            AssertionError: naming each inconsistency found (see
                :func:`mysqlpool._stats.imbalances`).
        """
        problems = imbalances(self.stats(), slots=self._slots, closed=self._closed)
        if problems:
            raise AssertionError(f"pool {self._name}: " + "; ".join(problems))

    def __repr__(self) -> str:
        s = self.stats()
        state = "closed" if self._closed else "open" if self._started else "new"
        return (
            f"<Pool {self._name!r} {state} size={self._pool_size}"
            f" open={s.open} idle={s.idle} in_use={s.in_use} waiting={s.waiting}>"
        )


class _AcquireContext:
    """What ``pool.acquire()`` returns: await it, or use it with ``async with``."""

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: Pool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> Any:
        """The acquire: an idle connection at once, else a wait in this one
        coroutine (a second one per acquire is measurable: benchmarks/)."""
        pool = self._pool
        # With nothing idle (all in use, under load) the wait begins at once.
        conn = pool.try_acquire() if pool._idle else None
        if conn is not None:
            self._conn = conn
            return conn
        if pool._closed:
            raise PoolClosed(f"pool {pool._name} is closed")
        if not pool._started:
            pool._start()
        timeout = pool._timeout if self._timeout is _UNSET else self._timeout
        now_, ping_after = pool._now, pool._ping_after
        deadline: float | None = None
        began: float | None = None  # set once this acquire must wait or do I/O
        try:
            while True:
                now = now_()
                grant = pool._grant(now, False)
                if began is None and (grant.__class__ is not Entry or ping_after is not None):
                    began = now
                    if timeout is not None:
                        deadline = now + timeout
                if grant is None:
                    fut = pool._waiters.add(deadline)
                    try:
                        grant = await fut
                        if pool._closed:  # handed over in the loop pass close() began in
                            raise PoolClosed(f"pool {pool._name} closed while waiting")
                    except BaseException:
                        # The accept handshake: whatever reached the future
                        # before we could take it goes back, so a timed-out or
                        # cancelled waiter leaks nothing.
                        if fut.done() and not fut.cancelled() and fut.exception() is None:
                            declined = fut.result()
                            if isinstance(declined, Entry):
                                pool._check_in(declined, None)
                            else:
                                pool._opening -= 1
                                pool._free_slot()
                        else:
                            pool._waiters.withdraw(fut)
                        raise
                if grant is _SLOT:
                    entry = await pool._open_slot(deadline)
                    pool._in_use[entry.conn] = entry
                elif ping_after is not None and not await pool._ping_ok(grant, deadline):  # type: ignore[arg-type]
                    continue
                else:
                    entry = grant  # type: ignore[assignment]
                conn = self._conn = pool._checkout(entry, now_(), began)
                return conn
        except DeadlineExceeded as exc:
            pool._timeouts += 1
            if began is not None:
                pool._wait_time += now_() - began
            limit = ""
            if exc.doing == "waiting for a connection":
                limit = (
                    f": all {pool._slots} connections in use (pool_size={pool._pool_size}"
                    f" + max_overflow={pool._options.max_overflow}),"
                    f" {pool._waiters.waiting()} waiting"
                )
            raise PoolTimeout(
                f"acquire timed out after {timeout} s {exc.doing}{limit}; pool {pool._name}"
            ) from None

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        # A plain method returning the release's awaitable: no coroutine of
        # its own on every ``async with`` (benchmarks/hotpath.py).
        conn, self._conn = self._conn, None
        return self._pool._give_back(conn, exc, False)


class _Done:
    """An awaitable that is already done: what a release that needs no I/O
    gives ``async with`` to await, and what ``clear()`` returns so that
    ``await pool.clear()`` works."""

    __slots__ = ()

    # An exhausted iterator ends an await at once, with None, and stays
    # exhausted, so one serves every await; its own __iter__ returns it
    # without a Python frame.
    __await__ = staticmethod(iter(()).__iter__)


_DONE: Awaitable[None] = _Done()  # type: ignore[assignment]


async def create_pool(dsn: str | ConnectParams | None = None, **options: Any) -> Pool:
    """``Pool(dsn, **options)``, opened: the reaper runs and ``min_size`` are open."""
    pool = Pool(dsn, **options)
    await pool.open()
    return pool


def _host_down(entry: Entry, host: Host) -> str | None:
    return "host down" if entry.host is host else None

