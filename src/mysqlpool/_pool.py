"""The pool: bounded, fair, and safe to cancel anywhere.

Shape: every state change is a plain method with no ``await`` inside
(``_grant``, ``_check_in``, ``_free_slot``, ``_reap_idle``...). On one event
loop such a method runs to completion, so no lock guards the state and a
cancellation can only land between two transitions, never inside one. The
I/O those transitions call for (connect, ping, reset) happens afterwards,
outside them, and each I/O step has one failure path that hands the slot
back.

Bookkeeping counts slots, not sockets: ``_slots`` covers idle, checked out
and being-opened connections, is reserved before ``connect()`` starts and
given back on any failure.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from types import TracebackType
from typing import Any, Literal, cast

from . import _connection as wire
from ._backoff import BACKOFF_CAP, BACKOFF_FIRST, backoff_delay
from ._connection import InitCallback
from ._dsn import resolve_params
from ._hosts import LOAD_BALANCE, TARGETS, Host, HostSet, LoadBalance, Target
from ._options import POOL_OPTION_DEFAULTS, split_pool_options
from ._params import ConnectParams
from ._server_state import ServerState, is_node_not_ready, read_server_state
from ._stats import PoolStats
from .errors import NoServerAvailable, PoolClosed, PoolError, PoolTimeout

__all__ = ["Pool", "create_pool"]

logger = logging.getLogger("mysqlpool")

ResetMode = Literal["rollback", "reset"]
#: ``on_connect``, ``on_checkout``, ``on_checkin``: called with the connection.
ConnectionHook = Callable[[Any], None]
#: ``on_discard``: called with the connection and why it is being closed.
DiscardHook = Callable[[Any, str], None]

#: ``pre_ping=True`` pings a connection that has been idle this long (seconds).
DEFAULT_PRE_PING_AFTER = 1.0

# A holder that stopped with one of these may have left a reply half read.
_INTERRUPTIONS = (asyncio.CancelledError, asyncio.TimeoutError, TimeoutError)

# Bound on each step of a KILL QUERY side connection (connect, then the KILL).
_KILL_TIMEOUT = 5.0

#: With several hosts, a connect that gets no answer in this many seconds
#: (``connect_timeout`` when it is set) moves on to the next host.
DEFAULT_HOST_CONNECT_TIMEOUT = 10.0

# Reasons for closing a connection that count it as recycled, not discarded:
# it was healthy, the pool just wanted it gone.
_RETIRED_HEALTHY = frozenset({"recycle", "max_lifetime", "rebalance"})

# acquire() builds its context with this instead of calling the class.
_new_object = object.__new__

# Marker meaning "no timeout argument given: use the pool's".
_UNSET: Any = object()


class _SlotGrant:
    """Hand-off value meaning "a slot is reserved for you: open a connection"."""


_SLOT = _SlotGrant()


# The reaper's refills back off like a failed host does.
REFILL_BACKOFF_FIRST = BACKOFF_FIRST
REFILL_BACKOFF_CAP = BACKOFF_CAP
refill_backoff = backoff_delay


def auto_recycle(wait_timeout: float) -> float:
    """The ``recycle`` that ``recycle="auto"`` picks for a server ``wait_timeout``.

    10% below it, at least 1 s and at most 5 minutes of margin, and never
    less than half of it, so a pooled connection is always retired by the
    pool before the server times it out.
    """
    margin = min(max(wait_timeout * 0.1, 1.0), 300.0)
    return max(wait_timeout - margin, wait_timeout / 2)


class _Entry:
    """One open connection and what the pool knows about it."""

    __slots__ = (
        "acquired_at",
        "checkout_marker",
        "conn",
        "host",
        "idle_since",
        "leak_handle",
        "opened_at",
        "returning",
        "stamp",
    )

    def __init__(self, conn: Any, host: Host, now: float) -> None:
        self.conn = conn
        self.host = host  # the server it is connected to
        self.opened_at = now  # for max_lifetime
        self.stamp = now  # activity stamp: open, then each checkout (recycle)
        self.idle_since = now  # last return: decides whether pre_ping pings
        self.checkout_marker: object = None  # driver result at checkout (needs_rollback)
        # True from release() until the next checkout: a second release of the
        # same checkout is refused while it is set.
        self.returning = False
        self.leak_handle: asyncio.TimerHandle | None = None
        self.acquired_at: list[str] | None = None  # stack of acquire(), with leak_timeout


class Pool:
    """An asyncio pool of aiomysql connections to a MySQL or MariaDB server,
    or to one of several (a Galera cluster, a primary with replicas).

    Args:
        dsn: ``mysql://user:password@host:port/db?option=value``, a
            :class:`ConnectParams`, or None to build one from ``connect_kwargs``.
        pool_size: idle connections kept in the queue (default 5).
        max_overflow: connections opened beyond ``pool_size`` under load and
            closed when they come back to a full queue (default 10); None means
            unbounded.
        timeout: seconds ``acquire()`` waits for a connection when
            ``pool_size + max_overflow`` are in use (default 30); None waits
            forever. Opening and pinging count against the same deadline.
        recycle: a connection whose activity stamp (set at open and at each
            checkout) is this many seconds old is closed instead of reused;
            ``"auto"`` (default) derives it from the server's ``wait_timeout``;
            None disables it.
        max_lifetime: seconds after opening when a connection is retired,
            however it is used (default None: never).
        pre_ping: True pings a connection idle for more than a second before
            handing it out; a number sets that idle threshold in seconds (0:
            always). A dead connection is replaced; the caller never sees it.
        reset_on_return: ``"rollback"`` (default) rolls back when a
            transaction may be open, ``"reset"`` sends COM_RESET_CONNECTION and
            re-applies the configured session, None does nothing.
        min_size: connections opened by ``open()`` and kept open by the reaper
            (default 0); at most ``pool_size``.
        reaper_interval: seconds between reaper passes; None derives it from
            ``recycle`` and ``max_lifetime``.
        init: ``async def init(conn)`` run on every new connection (and after
            every reset with ``reset_on_return="reset"``, which wipes what it set).
        leak_timeout: seconds after which a connection still checked out is
            logged as a likely leak, with the stack of its ``acquire()``.
        lifo: hand out the most recently returned connection first (default:
            the least recently returned, which spreads use evenly).
        name: how logs, errors and stats name the pool (default: the DSN with
            its password redacted).
        kill_query_on_cancel: when a holder is cancelled (or times out) while
            waiting for a statement's reply, send ``KILL QUERY`` for it over a
            short-lived side connection, so the server stops the work nobody
            will read (default True).
        on_connect, on_checkout, on_checkin: ``hook(conn)`` called (synchronously)
            when a connection is opened, handed out, and given back.
        on_discard: ``hook(conn, reason)`` called when the pool closes a
            connection (reason: ``"recycle"``, ``"max_lifetime"``,
            ``"pool full"``, ``"pool closed"``, ``"connection closed"``, ...).
            A hook that raises is logged and ignored.
        load_balance: with several hosts in the DSN, where new connections
            go: ``"failover"`` (default: the first host that is up, in
            order), ``"round_robin"``, ``"random"`` or ``"least_connections"``
            (spread over the hosts that are up, within one connection of
            even). A host that fails is marked down with exponential backoff,
            its idle connections are closed, and it is tried again when the
            backoff runs out; connections that come back to a host that is
            down, or where the policy no longer wants them (a better host is
            up again), are closed instead of kept.
        target: ``"any"`` (default), ``"primary"`` (only ``@@read_only=0``),
            ``"replica"`` (only ``@@read_only=1``) or ``"prefer_replica"`` (a
            replica when one is up, else the primary); checked on every new
            connection. A Galera node that is not ready and Synced counts as
            down whatever the target.
        connect_kwargs: other ``aiomysql.connect`` keywords.

    Every option but ``init`` and the hooks may also be given in the DSN's
    query string (``?pool_size=10&recycle=auto``); an option given both
    ways must agree.

    Raises:
        ValueError: for an option out of range or a malformed DSN (the message
            names the option and never shows the password).
    """

    # Slots, not an instance dict: with more than 30 attributes a dict-backed
    # instance never gets its attribute and method lookups specialized by
    # CPython 3.11+, and every ``pool.acquire()`` pays for that (callgrind:
    # benchmarks/hotpath.py). __weakref__: the Prometheus collector holds
    # weak references to pools. A new attribute must be listed here.
    __slots__ = (
        "__weakref__",
        "_acquires",
        "_background",
        "_check_state",
        "_checkout_without_io",
        "_closed",
        "_closed_total",
        "_discarded_total",
        "_drained",
        "_expiry",
        "_fill_task",
        "_hostset",
        "_idle",
        "_idle_get",
        "_idle_items",
        "_idle_put",
        "_in_use",
        "_init",
        "_kill_query_on_cancel",
        "_known",
        "_last_shared_deadline",
        "_leak_timeout",
        "_lifo",
        "_loop",
        "_max",
        "_max_lifetime",
        "_max_overflow",
        "_min_size",
        "_multi",
        "_name",
        "_on_checkin",
        "_on_checkout",
        "_on_connect",
        "_on_discard",
        "_opened_total",
        "_opening",
        "_params",
        "_pool_size",
        "_pre_ping_after",
        "_prober",
        "_reaper",
        "_reaper_interval",
        "_recycle",
        "_recycle_auto",
        "_recycled_total",
        "_reset_mode",
        "_shared_deadlines",
        "_slots",
        "_started",
        "_terminated",
        "_timeout",
        "_timeouts",
        "_wait_time",
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
        **connect_kwargs: Any,
    ) -> None:
        if isinstance(dsn, str):
            dsn, from_dsn = split_pool_options(dsn)
            if from_dsn:
                given = {
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
                merged = _merge_dsn_options(given, from_dsn)
                pool_size, max_overflow = merged["pool_size"], merged["max_overflow"]
                timeout, recycle = merged["timeout"], merged["recycle"]
                max_lifetime, pre_ping = merged["max_lifetime"], merged["pre_ping"]
                reset_on_return, min_size = merged["reset_on_return"], merged["min_size"]
                reaper_interval, leak_timeout = merged["reaper_interval"], merged["leak_timeout"]
                lifo, name = merged["lifo"], merged["name"]
                kill_query_on_cancel = merged["kill_query_on_cancel"]
                load_balance, target = merged["load_balance"], merged["target"]
        self._params = resolve_params(dsn, connect_kwargs)
        self._name = name if name is not None else str(self._params)
        for hook_name, hook in (
            ("on_connect", on_connect),
            ("on_checkout", on_checkout),
            ("on_checkin", on_checkin),
            ("on_discard", on_discard),
        ):
            if hook is not None and not callable(hook):
                raise ValueError(f"{hook_name} must be a callable, got {hook!r}")
        self._on_connect = on_connect
        self._on_checkout = on_checkout
        self._on_checkin = on_checkin
        self._on_discard = on_discard
        self._pool_size = _check_int("pool_size", pool_size, minimum=1)
        self._max_overflow = (
            None if max_overflow is None else _check_int("max_overflow", max_overflow, minimum=0)
        )
        self._max = None if self._max_overflow is None else self._pool_size + self._max_overflow
        self._timeout = _check_seconds("timeout", timeout, allow_zero=True)
        if recycle == "auto":
            self._recycle_auto = True
            self._recycle: float | None = None  # known once the first connection reports
        else:
            self._recycle_auto = False
            self._recycle = _check_seconds("recycle", recycle)
        self._max_lifetime = _check_seconds("max_lifetime", max_lifetime)
        self._pre_ping_after = _pre_ping_threshold(pre_ping)
        if reset_on_return not in ("rollback", "reset", None):
            raise ValueError(
                f"reset_on_return must be 'rollback', 'reset' or None, got {reset_on_return!r}"
            )
        self._reset_mode = reset_on_return
        self._min_size = _check_int("min_size", min_size, minimum=0)
        if self._min_size > self._pool_size:
            raise ValueError(
                f"min_size ({self._min_size}) must not exceed pool_size ({self._pool_size})"
            )
        self._reaper_interval = _check_seconds("reaper_interval", reaper_interval)
        if init is not None and not callable(init):
            raise ValueError(f"init must be an async callable taking the connection, got {init!r}")
        self._init = init
        self._leak_timeout = _check_seconds("leak_timeout", leak_timeout)
        self._lifo = bool(lifo)
        self._kill_query_on_cancel = bool(kill_query_on_cancel)
        if load_balance not in LOAD_BALANCE:
            raise ValueError(
                f"load_balance must be one of {', '.join(map(repr, LOAD_BALANCE))}, "
                f"got {load_balance!r}"
            )
        if target not in TARGETS:
            raise ValueError(
                f"target must be one of {', '.join(map(repr, TARGETS))}, got {target!r}"
            )
        self._hostset = HostSet(self._params, load_balance, target)
        # Host health and placement only matter with somewhere else to go; a
        # single-server pool fails and recovers exactly as it always did.
        self._multi = len(self._hostset.hosts) > 1
        # Read @@read_only (and Galera's state) on every new connection.
        self._check_state = self._multi or target != "any"
        # Reopens hosts that are down once their backoff runs out.
        self._prober: asyncio.Task[None] | None = None
        # Tasks the pool spawned (KILL QUERY on a side connection): kept so
        # close() can await them and nothing is left pending.
        self._background: set[asyncio.Task[None]] = set()

        # Idle connections, ready to hand out; never more than pool_size.
        # Invariant: while it holds any, no acquirer is waiting.
        self._idle: asyncio.Queue[_Entry] = (
            asyncio.LifoQueue(self._pool_size) if self._lifo else asyncio.Queue(self._pool_size)
        )
        # Nobody ever blocks on this queue (waiters are our own futures) and
        # nobody joins it, so its getter/putter wake-ups and task counting are
        # pure cost on the hot path.
        # Its storage, a deque (FIFO) or a list (LIFO), is used directly: one
        # call per checkout or return instead of two.
        storage: Any = self._idle._queue  # type: ignore[attr-defined]
        self._idle_items: collections.abc.Sized = storage
        self._idle_get: Callable[[], _Entry] = storage.pop if self._lifo else storage.popleft
        self._idle_put: Callable[[_Entry], None] = storage.append
        # Checked-out connections (and those handed to a waiter or coming
        # back), by connection: how release() tells ours from foreign ones.
        self._in_use: dict[Any, _Entry] = {}
        # Every connection this pool opened and has not forgotten: tells a
        # second release apart from a foreign connection in the error message.
        self._known: weakref.WeakSet[Any] = weakref.WeakSet()
        # Slots taken: idle + in use + being opened. Never above _max.
        self._slots = 0
        # Slots reserved for a connection not open yet.
        self._opening = 0
        # Acquirers waiting, oldest first. Each future gets an _Entry (a
        # connection handed over) or _SLOT (open one yourself). Futures are
        # removed when resolved; one that timed out or was cancelled is
        # removed by its own acquirer and skipped if still found.
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        # Deadlines (and timeouts, for the message) of waiters that share one
        # timer, _expiry, set for the earliest of them; they were queued with
        # non-decreasing deadlines, the last of which is _last_shared_deadline.
        self._shared_deadlines: dict[asyncio.Future[Any], tuple[float, float | None]] = {}
        self._last_shared_deadline = -math.inf
        self._expiry: asyncio.TimerHandle | None = None

        self._started = False  # open() ran (or the first acquire() did it)
        # Started and not closed: acquire may take an idle connection that
        # needs no ping without a coroutine (the one flag the fast path reads).
        self._checkout_without_io = False
        self._closed = False  # close() or terminate() began: no more acquires
        self._terminated = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._drained: asyncio.Event | None = None  # set once _slots is 0 after close
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
            The driver's error when a ``min_size`` connection can't be opened
            (the pool stays open and the reaper keeps trying).
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
        loop = asyncio.get_running_loop()
        self._started = True
        self._checkout_without_io = True
        self._loop = loop
        self._drained = asyncio.Event()
        self._reaper = loop.create_task(self._reap_forever(), name=f"mysqlpool reaper {self._name}")

    async def close(self, timeout: float | None = None) -> None:
        """Close the pool gracefully.

        Refuses new acquires (waiters get :class:`PoolClosed`), stops the
        reaper, closes idle connections, then waits up to ``timeout`` seconds
        (None: as long as it takes) for checked-out connections to come back,
        closing each as it does, and terminates those still out.
        """
        timeout = _check_seconds("timeout", timeout, allow_zero=True)
        started = time.monotonic()
        self._shut_down()
        drained = self._drained
        if drained is not None and not drained.is_set() and not self._terminated:
            try:
                await asyncio.wait_for(drained.wait(), timeout)
            except asyncio.TimeoutError:
                logger.warning(
                    "pool %s: %d connection(s) still checked out after %s s; closing them",
                    self._name,
                    len(self._in_use),
                    timeout,
                )
                self.terminate()
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        await self._join_background(remaining)

    def terminate(self) -> None:
        """Close every connection now, checked-out ones included.

        Their holders' next statement fails with the driver's error; their
        ``release()`` is accepted and just frees the slot.
        """
        self._shut_down()
        self._terminated = True
        for entry in self._in_use.values():
            wire.close_connection(entry.conn, graceful=False)
        for task in self._background:
            task.cancel()

    def _shut_down(self) -> None:
        """Refuse acquires, fail waiters, stop the reaper, close idle ones."""
        if self._closed:
            return
        self._closed = True
        self._checkout_without_io = False
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._reaper is not None:
            self._reaper.cancel()
        if self._prober is not None:
            self._prober.cancel()
        if self._fill_task is not None:
            self._fill_task.cancel()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(PoolClosed(f"pool {self._name} closed while waiting"))
        while len(self._idle_items):
            entry = self._idle_get()
            self._close(entry, "pool closed", graceful=True)
            self._slots -= 1
        self._note_drained()
        logger.debug("pool %s: closing", self._name)

    async def _join_background(self, timeout: float | None) -> None:
        """Await the pool's own tasks; side tasks still running after
        ``timeout`` (a KILL QUERY to a server that doesn't answer) are cancelled."""
        if self._background:
            _, late = await asyncio.wait(set(self._background), timeout=timeout)
            for side_task in late:
                side_task.cancel()
        tasks: list[asyncio.Future[Any] | None] = [self._reaper, self._fill_task, self._prober]
        tasks.extend(self._background)
        for task in tasks:
            if task is not None and not task.done():
                try:
                    await task
                except asyncio.CancelledError:
                    if not task.cancelled():  # close() itself was cancelled
                        raise
                except Exception:
                    pass  # already logged by the task itself

    def _note_drained(self) -> None:
        if self._closed and self._slots == 0 and self._drained is not None:
            self._drained.set()

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
            The driver's error if opening a new connection fails.
        """
        if timeout is _UNSET:
            # _AcquireContext(self, _UNSET) without the __init__ call: CPython
            # 3.11 doesn't specialize a class call, and this is ~500 of the
            # ~15,000 instructions of an acquire+release (callgrind:
            # benchmarks/hotpath.py). _conn is set by __aenter__.
            ctx = _new_object(_AcquireContext)
            ctx._pool = self
            ctx._timeout = _UNSET
            return ctx
        return _AcquireContext(self, _check_seconds("timeout", timeout, allow_zero=True))

    async def _acquire(self, timeout: float | None) -> Any:
        if self._closed:
            raise PoolClosed(f"pool {self._name} is closed")
        if not self._started:
            self._start()
        if timeout is _UNSET:
            timeout = self._timeout
        loop = self._loop
        assert loop is not None
        deadline: float | None = None
        began: float | None = None  # set once this acquire must wait or do I/O
        try:
            while True:
                grant = self._grant()
                needs_io = grant.__class__ is not _Entry or self._pre_ping_after is not None
                if began is None and needs_io:
                    began = loop.time()
                    if timeout is not None:
                        deadline = began + timeout
                if grant is None:
                    grant = await self._wait(deadline, timeout)
                    if self._closed:
                        # Handed over in the same loop pass as close() began.
                        self._decline(grant)
                        raise PoolClosed(f"pool {self._name} closed while waiting")
                if grant is _SLOT:
                    entry = await self._open_reserved(deadline, timeout)
                    return self._hand_out(entry, began)
                assert isinstance(grant, _Entry)
                if self._pre_ping_after is not None and not await self._ping_ok(
                    grant, deadline, timeout
                ):
                    continue
                return self._hand_out(grant, began)
        except PoolTimeout:
            self._timeouts += 1
            if began is not None:
                self._wait_time += loop.time() - began
            raise

    def _grant(self) -> _Entry | _SlotGrant | None:
        """Take an idle connection, or reserve a slot, or say "wait" (None).

        Idle connections that are dead or past recycle/max_lifetime are closed
        on the way. Only called when no live waiter is queued ahead (the
        idle-implies-no-waiter invariant guarantees it for the idle queue, and
        a free slot with a live waiter is always transferred at once).
        """
        entry = self._take_idle()
        if entry is not None:
            return entry
        if self._max is None or self._slots < self._max:
            self._slots += 1
            self._opening += 1
            return _SLOT
        return None

    def _take_idle(self) -> _Entry | None:
        """Check out the first usable idle connection, closing unusable ones.

        The caller pings it if ``pre_ping`` asks, then hands it out. (The
        no-I/O case, _checkout_now, does the same in one call: keep in step.)
        """
        items, get = self._idle_items, self._idle_get
        recycle, lifetime = self._recycle, self._max_lifetime
        now = time.monotonic()  # (no await in this loop)
        while items:
            entry = get()
            # _retire_reason, inlined: this runs on every checkout, and two
            # calls fewer are ~10% of its cost (callgrind). Keep them in step.
            if (
                not wire.socket_is_dead(entry.conn)
                and (recycle is None or now - entry.stamp < recycle)
                and (lifetime is None or now - entry.opened_at < lifetime)
            ):
                self._in_use[entry.conn] = entry
                entry.stamp = now  # checked out now (recycle counts from here)
                return entry
            self._retire(entry, self._retire_reason(entry, now) or "unusable")
            self._slots -= 1
        return None

    def _checkout_now(self) -> Any:
        """The fast path of acquire: an idle connection that needs no I/O (no
        ping: used within ``pre_ping``'s threshold), checked out, else None.

        No coroutine, no await. The one place for a checkout without I/O: it
        is _take_idle then _hand_out (began=None) in one call, with the
        socket test and the checkout marker asked of the driver in one call
        too, because it runs on every ``async with pool.acquire()``: the
        three calls saved are ~9% of an acquire+release (callgrind:
        benchmarks/hotpath.py). Keep it in step with those two.
        """
        if not self._checkout_without_io:
            return None
        items, get = self._idle_items, self._idle_get
        recycle, lifetime = self._recycle, self._max_lifetime
        ping_after = self._pre_ping_after
        now = time.monotonic()  # (no await in this loop)
        while items:
            if ping_after is not None:
                head: _Entry = items[-1] if self._lifo else items[0]  # type: ignore[index]
                if now - head.idle_since >= ping_after:
                    return None  # the slow path pings it first
            entry = get()
            conn = entry.conn
            marker = wire.checkout_marker(conn)  # UNFIT: the socket is dead
            # The age test is _age_reason's (see _take_idle).
            if (
                marker is not wire.UNFIT
                and (recycle is None or now - entry.stamp < recycle)
                and (lifetime is None or now - entry.opened_at < lifetime)
            ):
                self._in_use[conn] = entry
                entry.stamp = now  # checked out now (recycle counts from here)
                entry.returning = False
                entry.checkout_marker = marker
                self._acquires += 1
                if self._on_checkout is not None or self._leak_timeout is not None:
                    self._checkout_extras(entry)
                return conn
            self._retire(entry, self._retire_reason(entry, now) or "unusable")
            self._slots -= 1
        return None

    async def _wait(self, deadline: float | None, timeout: float | None) -> _Entry | _SlotGrant:
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Any] = loop.create_future()
        own_timer = None
        if deadline is not None:
            if deadline >= self._last_shared_deadline:
                self._shared_deadlines[fut] = (deadline, timeout)
                self._last_shared_deadline = deadline
                expiry = self._expiry
                if expiry is None or expiry.when() > deadline:
                    if expiry is not None:
                        expiry.cancel()
                    self._expiry = loop.call_at(deadline, self._expire_due)
            else:
                # A shorter timeout than a waiter queued before it: out of the
                # shared timer's order, so it gets a timer of its own.
                own_timer = loop.call_at(deadline, self._expire, fut, timeout)
        self._waiters.append(fut)
        try:
            grant: _Entry | _SlotGrant = await fut
            return grant
        except BaseException:
            # The accept handshake: whatever reached the future before we could
            # take it goes back, so a timed-out or cancelled waiter leaks nothing.
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._decline(fut.result())
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise
        finally:
            if own_timer is not None:
                own_timer.cancel()
            shared = self._shared_deadlines
            if shared.pop(fut, None) is not None and not shared:
                self._last_shared_deadline = -math.inf

    def _expire_due(self) -> None:
        """The shared timer: fail every waiter whose deadline has passed.

        Waiters on it were queued with non-decreasing deadlines, so the scan
        from the oldest stops at the first one still in time, and the timer
        is set again for it. (One timer for all waiters, instead of one per
        wait: under load thousands of cancelled timers would pile up in the
        loop's heap.)
        """
        self._expiry = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        shared = self._shared_deadlines
        for fut in self._waiters:
            due = shared.get(fut)
            if due is None or fut.done():
                continue
            deadline, timeout = due
            if deadline > now:
                self._expiry = loop.call_at(deadline, self._expire_due)
                return
            fut.set_exception(self._timeout_error(timeout, "waiting for a connection"))

    def _expire(self, fut: asyncio.Future[Any], timeout: float | None) -> None:
        if not fut.done():
            fut.set_exception(self._timeout_error(timeout, "waiting for a connection"))

    def _decline(self, grant: _Entry | _SlotGrant) -> None:
        if grant is _SLOT:
            self._opening -= 1
            self._free_slot()
        else:
            assert isinstance(grant, _Entry)
            del self._in_use[grant.conn]
            self._offer(grant)

    async def _open_reserved(self, deadline: float | None, timeout: float | None) -> _Entry:
        """Open a connection into the slot this acquirer holds."""
        try:
            conn, host = await self._connect(deadline, timeout)
        except BaseException:
            self._opening -= 1
            self._free_slot()
            raise
        self._opening -= 1
        entry = self._new_entry(conn, host)
        if self._closed:
            self._close(entry, "pool closed", graceful=True)
            self._free_slot()
            raise PoolClosed(f"pool {self._name} closed while a connection was opening")
        self._in_use[conn] = entry
        return entry

    def _new_entry(self, conn: Any, host: Host) -> _Entry:
        self._opened_total += 1
        self._known.add(conn)
        host.open += 1
        if self._on_connect is not None:
            self._call_hook("on_connect", self._on_connect, conn)
        return _Entry(conn, host, time.monotonic())

    def _call_hook(self, hook_name: str, hook: Callable[..., None], *args: Any) -> None:
        # A tracing hook that fails must not break the pool's bookkeeping.
        try:
            hook(*args)
        except Exception:
            logger.exception("pool %s: %s hook raised; ignored", self._name, hook_name)

    async def _connect(
        self, deadline: float | None = None, timeout: float | None = None
    ) -> tuple[Any, Host]:
        """Open a connection within the acquire's deadline: the pool's one way in.

        With several hosts, tries them in the policy's order (see
        :meth:`HostSet.candidates`), marking each that fails down, under one
        deadline; a host that doesn't answer gets at most half the time left
        while others remain to be tried.
        """
        hostset = self._hostset
        if not self._multi:
            host = hostset.hosts[0]
            opening = self._open_on(host)
            conn, state = await self._bounded(opening, deadline, timeout, "opening a connection")
            if state is not None:
                refusal = self._turn_away(host, conn, state)
                if refusal is not None:
                    raise NoServerAvailable(f"pool {self._name}: {host.label}: {refusal}")
                hostset.mark_up(host, state)
            return conn, host
        loop = self._loop
        assert loop is not None
        tried: set[Host] = set()
        errors: list[str] = []
        last_error: BaseException | None = None
        fallback: tuple[Any, Host] | None = None  # prefer_replica: a primary, if no replica
        try:
            while True:
                # Asked again after each failure: other acquires may have
                # changed the loads (and the health) since.
                candidates = [
                    host
                    for host in hostset.candidates(time.monotonic())
                    if host not in tried and not (fallback is not None and host.role == "primary")
                ]
                if not candidates:
                    break
                host = candidates[0]
                tried.add(host)
                others_left = len(candidates) > 1
                limit = self._attempt_limit(deadline, others_left, loop)
                if limit is not None and limit <= 0:
                    raise self._timeout_error(timeout, "opening a connection")
                host.opening += 1
                try:
                    conn, state = await _within(self._open_on(host), limit)
                except (asyncio.TimeoutError, TimeoutError):
                    self._host_failed(host, "connect timed out")
                    if deadline is not None and loop.time() >= deadline:
                        raise self._timeout_error(timeout, "opening a connection") from None
                    errors.append(f"{host.label}: connect timed out")
                    continue
                except Exception as exc:
                    self._host_failed(host, f"connect failed: {_brief(exc)}")
                    errors.append(f"{host.label}: {_brief(exc)}")
                    last_error = exc
                    continue
                finally:
                    host.opening -= 1
                assert state is not None
                refusal = self._turn_away(host, conn, state)
                if refusal is not None:
                    errors.append(f"{host.label}: {refusal}")
                    continue
                if (
                    hostset.target == "prefer_replica"
                    and state.role == "primary"
                    and fallback is None
                    and others_left
                    and hostset.replica_may_be_up(time.monotonic())
                ):
                    host.role = state.role
                    fallback = (conn, host)  # kept while the others are asked
                    continue
                self._host_answered(host, state)
                if fallback is not None:
                    wire.close_connection(fallback[0], graceful=True)
                    fallback = None
                return conn, host
        except BaseException:
            if fallback is not None:
                wire.close_connection(fallback[0], graceful=True)
            raise
        if fallback is not None:
            conn, host = fallback
            self._host_answered(host, None)
            return conn, host
        raise NoServerAvailable(
            f"pool {self._name}: no server could be used: " + "; ".join(errors)
        ) from last_error

    def _attempt_limit(
        self, deadline: float | None, others_left: bool, loop: asyncio.AbstractEventLoop
    ) -> float | None:
        """How long one host may take to connect: never all the time left
        while another host could still answer."""
        remaining = None if deadline is None else deadline - loop.time()
        if not others_left:
            return remaining
        cap = self._params.connect_timeout or DEFAULT_HOST_CONNECT_TIMEOUT
        return cap if remaining is None else min(cap, remaining / 2)

    async def _open_on(self, host: Host) -> tuple[Any, ServerState | None]:
        """Open one connection to ``host``; the first one also resolves
        ``recycle="auto"``; with several hosts or a target, read its state."""
        conn = await wire.open_connection(host.params, self._init)
        try:
            if self._recycle_auto and not host.wait_timeout_read:
                # Each server's first connection: the servers of a list may
                # differ, and recycle must stay below the lowest.
                wait_timeout = await wire.read_wait_timeout(conn)
                host.wait_timeout_read = True
                recycle = auto_recycle(wait_timeout)
                if self._recycle is None or recycle < self._recycle:
                    self._recycle = recycle
                    logger.debug(
                        "pool %s: %s has wait_timeout %s s; recycle set to %s s",
                        self._name,
                        host.label,
                        wait_timeout,
                        self._recycle,
                    )
            state = await read_server_state(conn) if self._check_state else None
        except BaseException:
            wire.close_connection(conn, graceful=False)
            raise
        return conn, state

    # ----------------------------------------------------------- host health

    def _turn_away(self, host: Host, conn: Any, state: ServerState) -> str | None:
        """Why a new connection's server can't serve this pool now (wrong role,
        Galera node not ready), having closed it and marked its host down; or
        None when it can."""
        refusal = self._hostset.refusal(state)
        if refusal is None:
            return None
        wire.close_connection(conn, graceful=True)
        host.role = state.role
        if self._multi:
            self._host_failed(host, refusal, answering=not state.ready)
        else:  # nowhere else to go: only the stats say so
            self._hostset.mark_down(host, refusal, time.monotonic())
        return refusal

    def _host_failed(self, host: Host, reason: str, *, answering: bool = False) -> None:
        """Mark ``host`` down; when it was up, close its idle connections (all
        suspect) and start probing it. Only with several hosts.

        ``answering``: the server answered but can't serve yet (a Galera node
        catching up): retried soon, without a growing backoff."""
        if not self._multi:
            return
        if self._hostset.mark_down(host, reason, time.monotonic(), answering=answering):
            logger.warning(
                "pool %s: host %s is down (%s); trying again in %.1f s",
                self._name,
                host.label,
                reason,
                max(0.0, host.retry_at - time.monotonic()),
            )
            self._close_idle_on(host, "host down")
        self._ensure_prober()

    def _note_host_trouble(self, host: Host, conn: Any, exc: BaseException | None) -> None:
        """A returned connection was lost, or its Galera node said it isn't ready."""
        if exc is not None and is_node_not_ready(exc):
            self._host_failed(host, _brief(exc), answering=True)
        elif exc is not None and wire.is_connection_lost(exc):
            self._host_failed(host, _brief(exc))
        elif wire.socket_is_dead(conn):
            self._host_failed(host, "connection lost")

    def _host_answered(self, host: Host, state: ServerState | None) -> None:
        if self._hostset.mark_up(host, state):
            logger.warning("pool %s: host %s is up again", self._name, host.label)

    def _close_idle_on(self, host: Host, reason: str) -> None:
        items, keep = self._idle_items, []
        while len(items):
            entry = self._idle_get()
            if entry.host is host:
                self._retire(entry, reason)
                self._slots -= 1
            else:
                keep.append(entry)
        for entry in reversed(keep) if self._lifo else keep:
            self._idle_put(entry)
        self._note_drained()

    def _ensure_prober(self) -> None:
        if self._prober is None and self._started and not self._closed:
            self._prober = asyncio.get_running_loop().create_task(
                self._probe_down_hosts(), name=f"mysqlpool host prober {self._name}"
            )

    async def _probe_down_hosts(self) -> None:
        """Try each host that is down when its backoff runs out, until all are up.

        A host rejoins without waiting for an acquire to need a new
        connection; the probe's connection is kept if the pool has room.
        """
        hostset = self._hostset
        try:
            while not self._closed:
                retry_at = hostset.next_retry()
                if retry_at is None:
                    return
                delay = retry_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                for host in hostset.due(time.monotonic()):
                    await self._probe(host)
        finally:
            self._prober = None

    async def _probe(self, host: Host) -> None:
        limit = self._params.connect_timeout or DEFAULT_HOST_CONNECT_TIMEOUT
        host.opening += 1
        try:
            conn, state = await _within(self._open_on(host), limit)
        except Exception as exc:
            self._host_failed(host, f"connect failed: {_brief(exc)}")
            return
        finally:
            host.opening -= 1
        assert state is not None
        if self._turn_away(host, conn, state) is not None:
            return
        self._host_answered(host, state)
        if self._closed:
            wire.close_connection(conn, graceful=True)
            return
        if (self._max is None or self._slots < self._max) and len(
            self._idle_items
        ) < self._pool_size:
            self._slots += 1
            self._offer(self._new_entry(conn, host))
            return
        # A full pool: the probe's connection takes the place of an idle one
        # the policy no longer wants there, so an idle pool moves back too.
        misplaced = next(
            (
                entry
                for entry in cast("Iterable[_Entry]", self._idle_items)
                if not self._hostset.preferred(entry.host)
            ),
            None,
        )
        if misplaced is None:
            wire.close_connection(conn, graceful=True)
            return
        self._idle_items.remove(misplaced)  # type: ignore[attr-defined]
        self._retire(misplaced, "rebalance")
        self._idle_put(self._new_entry(conn, host))

    async def _ping_ok(self, entry: _Entry, deadline: float | None, timeout: float | None) -> bool:
        """Ping a connection idle past the threshold; a dead one is discarded."""
        threshold = self._pre_ping_after
        assert threshold is not None
        if time.monotonic() - entry.idle_since < threshold:
            return True
        try:
            await self._bounded(wire.ping(entry.conn), deadline, timeout, "pinging a connection")
        except Exception as exc:
            del self._in_use[entry.conn]
            self._retire(entry, "ping failed")
            self._free_slot()
            if not isinstance(exc, PoolTimeout):
                self._host_failed(entry.host, f"ping failed: {_brief(exc)}")
            if isinstance(exc, PoolTimeout):
                raise
            logger.info("pool %s: discarded a connection that failed its ping: %s", self._name, exc)
            return False
        except BaseException:
            del self._in_use[entry.conn]
            self._retire(entry, "cancelled during ping")
            self._free_slot()
            raise
        return True

    async def _bounded(
        self, coro: Awaitable[Any], deadline: float | None, timeout: float | None, doing: str
    ) -> Any:
        """Await one I/O step within the acquire deadline (PoolTimeout past it)."""
        if deadline is None:
            return await coro
        assert self._loop is not None
        remaining = deadline - self._loop.time()
        if remaining <= 0:
            if asyncio.iscoroutine(coro):
                coro.close()
            raise self._timeout_error(timeout, doing)
        try:
            return await _within(coro, remaining)
        except asyncio.TimeoutError:
            raise self._timeout_error(timeout, doing) from None

    def _hand_out(self, entry: _Entry, began: float | None) -> Any:
        """Check out ``entry`` to the acquirer. (_checkout_now does the same
        for an idle connection that needs no I/O: keep in step.)"""
        entry.stamp = time.monotonic()
        entry.returning = False
        conn = entry.conn
        entry.checkout_marker = wire.result_marker(conn)
        self._acquires += 1
        if began is not None and self._loop is not None:
            self._wait_time += self._loop.time() - began
        if self._on_checkout is not None or self._leak_timeout is not None:
            self._checkout_extras(entry)
        return conn

    def _checkout_extras(self, entry: _Entry) -> None:
        """What a checkout does when configured: on_checkout, the leak timer."""
        if self._on_checkout is not None:
            self._call_hook("on_checkout", self._on_checkout, entry.conn)
        if self._leak_timeout is not None and self._loop is not None:
            entry.acquired_at = _caller_stack()
            entry.leak_handle = self._loop.call_later(self._leak_timeout, self._report_leak, entry)

    def _report_leak(self, entry: _Entry) -> None:
        entry.leak_handle = None
        stack = "".join(entry.acquired_at or ())
        logger.warning(
            "pool %s: a connection has been checked out for more than %s s "
            "(possible leak); acquired at:\n%s",
            self._name,
            self._leak_timeout,
            stack,
        )

    def _timeout_error(self, timeout: float | None, doing: str) -> PoolTimeout:
        if doing == "waiting for a connection":
            limit = (
                f": all {self._slots} connections in use (pool_size={self._pool_size}"
                f" + max_overflow={self._max_overflow}), {len(self._waiters)} waiting"
            )
        else:
            limit = ""
        return PoolTimeout(f"acquire timed out after {timeout} s {doing}{limit}; pool {self._name}")

    # -------------------------------------------------------------- release

    async def release(self, conn: Any) -> None:
        """Give back a connection from ``await pool.acquire()``.

        Raises:
            PoolError: ``conn`` did not come from this pool, or was already
                released.
        """
        entry = self._begin_release(conn, None)
        if entry is not None:
            await self._reset_and_check_in(entry)

    async def _release(self, conn: Any, exc: BaseException | None) -> None:
        entry = self._begin_release(conn, exc)
        if entry is not None:
            await self._reset_and_check_in(entry)

    def _begin_release(self, conn: Any, exc: BaseException | None) -> _Entry | None:
        """Take a connection back; finish now unless it needs a reset round trip.

        Returns the entry when the caller must ``await _reset_and_check_in``,
        None when the connection's fate is already decided (no I/O needed).
        """
        entry = self._in_use.get(conn)
        if entry is None or entry.returning:
            if entry is not None or conn in self._known:
                state = "was already released to"
            else:
                state = "was not acquired from"
            raise PoolError(f"connection {id(conn):#x} {state} pool {self._name}")
        entry.returning = True
        if entry.leak_handle is not None:
            entry.leak_handle.cancel()
            entry.leak_handle = None
        if self._on_checkin is not None:
            self._call_hook("on_checkin", self._on_checkin, conn)
        if exc is None and wire.clean_after_use(conn):
            # The common return, in one test: open, nothing unread, no
            # transaction. Its fate is _check_in's (only reset_on_return=
            # "reset" has I/O to do first); below, the same questions one by one.
            if self._reset_mode == "reset" and not self._closed:
                return entry
            self._check_in(entry, None)
            return None
        reason = self._unknown_state_reason(conn, exc)
        if self._multi:
            self._note_host_trouble(entry.host, conn, exc)
        if reason is not None and self._kill_query_on_cancel and wire.cancelled_mid_reply(conn):
            # The holder stopped waiting for its statement's reply; the server
            # is still running it. (Only a holder's statement: never the
            # pool's own ping or reset.)
            self._spawn(self._kill_query(entry.host.params, conn.thread_id()))
        if reason is None and not self._closed:
            mode = self._reset_mode
            if mode == "reset" or (
                mode == "rollback" and wire.needs_rollback(conn, entry.checkout_marker)
            ):
                return entry
        self._check_in(entry, reason)
        return None

    async def _reset_and_check_in(self, entry: _Entry) -> None:
        reason = None
        try:
            if self._reset_mode == "rollback":
                await entry.conn.rollback()
            else:
                await wire.reset_session(entry.conn, self._params, self._init)
        except Exception as reset_exc:
            reason = "reset failed"
            logger.info(
                "pool %s: discarded a connection whose reset failed: %s", self._name, reset_exc
            )
        except BaseException:
            self._check_in(entry, "cancelled during reset")
            raise
        self._check_in(entry, reason)

    def _unknown_state_reason(self, conn: Any, exc: BaseException | None) -> str | None:
        """Why the connection's protocol state can't be trusted, if it can't."""
        if wire.socket_is_dead(conn):
            return "connection closed"
        if exc is not None:
            if wire.is_connection_lost(exc):
                return f"connection lost ({type(exc).__name__})"
            if isinstance(exc, _INTERRUPTIONS) or not isinstance(exc, Exception):
                # The holder stopped mid-statement, maybe: the reply may be half read.
                return f"holder interrupted ({type(exc).__name__})"
        if wire.has_unread_result(conn):
            return "unread result"
        return None

    def _check_in(self, entry: _Entry, reason: str | None) -> None:
        """Decide the fate of a returned connection. The only place that does.

        Closed (slot freed for a waiter) when the pool is closing, its state
        is unknown, or it is past recycle/max_lifetime; else handed to the
        oldest waiter; else queued if the queue has room; else closed as
        overflow.
        """
        del self._in_use[entry.conn]
        if reason is not None:
            self._retire(entry, reason)
            self._free_slot()
            return
        if self._closed:
            self._close(entry, "pool closed", graceful=True)
            self._free_slot()
            return
        now = time.monotonic()
        # The socket was checked by the caller, with no await since; the age
        # test is _age_reason's, inlined for the hot path (keep them in step).
        recycle, lifetime = self._recycle, self._max_lifetime
        if (recycle is not None and now - entry.stamp >= recycle) or (
            lifetime is not None and now - entry.opened_at >= lifetime
        ):
            self._retire(entry, self._age_reason(entry, now) or "aged")
            self._free_slot()
            return
        if self._multi and not self._hostset.preferred(entry.host):
            # Its host went down, or a better one is up (see HostSet.preferred).
            self._retire(entry, "rebalance" if entry.host.up else "host down")
            self._free_slot()
            return
        entry.idle_since = now
        if not self._waiters and len(self._idle_items) < self._pool_size:
            self._idle_put(entry)  # the common case of _offer, without the call
        else:
            self._offer(entry)

    def _offer(self, entry: _Entry) -> None:
        """A healthy connection is free: oldest waiter, else the queue, else close."""
        waiter = self._next_waiter()
        if waiter is not None:
            self._in_use[entry.conn] = entry
            waiter.set_result(entry)
        elif len(self._idle_items) < self._pool_size and not self._closed:
            self._idle_put(entry)
        else:
            self._close(entry, "pool full" if not self._closed else "pool closed", graceful=True)
            self._free_slot()

    def _next_waiter(self) -> asyncio.Future[Any] | None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                return fut
        return None

    def _free_slot(self) -> None:
        """A slot was given up: the oldest waiter takes it over, else it is freed."""
        waiter = None if self._closed else self._next_waiter()
        if waiter is not None:
            self._opening += 1
            waiter.set_result(_SLOT)
        else:
            self._slots -= 1
            self._note_drained()

    def _retire_reason(self, entry: _Entry, now: float) -> str | None:
        if wire.socket_is_dead(entry.conn):
            return "closed by the server"
        return self._age_reason(entry, now)

    def _age_reason(self, entry: _Entry, now: float) -> str | None:
        """The age rules: recycle from the activity stamp, max_lifetime from the
        open. (_take_idle, _checkout_now and _check_in inline the same test
        on the hot path.)"""
        if self._recycle is None and self._max_lifetime is None:
            return None
        if self._recycle is not None and now - entry.stamp >= self._recycle:
            return "recycle"
        if self._max_lifetime is not None and now - entry.opened_at >= self._max_lifetime:
            return "max_lifetime"
        return None

    def _retire(self, entry: _Entry, reason: str) -> None:
        """Close a connection and count why. (The caller frees the slot.)"""
        aged = reason in _RETIRED_HEALTHY
        if aged:
            self._recycled_total += 1
        else:
            self._discarded_total += 1
        logger.debug("pool %s: closing a connection: %s", self._name, reason)
        self._close(entry, reason, graceful=aged)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _kill_query(self, params: ConnectParams, thread_id: int) -> None:
        """Stop the statement a cancelled holder left running on its server."""
        try:
            conn = await _within(wire.open_connection(params, None), _KILL_TIMEOUT)
            try:
                await asyncio.wait_for(conn.query(f"KILL QUERY {int(thread_id)}"), _KILL_TIMEOUT)
            finally:
                wire.close_connection(conn, graceful=True)
        except Exception as exc:  # e.g. 1094: the statement already ended
            logger.debug("pool %s: KILL QUERY %s failed: %s", self._name, thread_id, exc)

    def _close(self, entry: _Entry, reason: str, *, graceful: bool) -> None:
        if entry.leak_handle is not None:
            entry.leak_handle.cancel()
            entry.leak_handle = None
        wire.close_connection(entry.conn, graceful=graceful)
        entry.host.open -= 1
        self._closed_total += 1
        if self._on_discard is not None:
            self._call_hook("on_discard", self._on_discard, entry.conn, reason)

    # --------------------------------------------------------------- reaper

    def _reaper_period(self) -> float:
        if self._reaper_interval is not None:
            return self._reaper_interval
        limits = [x for x in (self._recycle, self._max_lifetime) if x is not None]
        if not limits:
            return 60.0
        return min(max(min(limits) / 4, 0.05), 60.0)

    async def _reap_forever(self) -> None:
        failures = 0  # refills failed in a row
        retry_at = 0.0  # no refill before this (monotonic): backoff while the server is away
        while True:
            await asyncio.sleep(self._reaper_period())
            try:
                self._reap_idle()
                if time.monotonic() >= retry_at:
                    if await self._fill_min_size(raise_errors=False):
                        failures = 0
                    else:
                        failures += 1
                        retry_at = time.monotonic() + refill_backoff(failures)
            except Exception:
                logger.exception("pool %s: reaper pass failed; retrying next pass", self._name)

    def _reap_idle(self) -> None:
        """Close idle connections that are dead or past recycle/max_lifetime."""
        now = time.monotonic()
        keep = []
        while len(self._idle_items):
            entry = self._idle_get()
            reason = self._retire_reason(entry, now)
            if reason is None:
                keep.append(entry)
            else:
                self._retire(entry, reason)
                self._slots -= 1
        # A LIFO queue hands its entries out newest first: put them back so
        # the order is unchanged.
        for entry in reversed(keep) if self._lifo else keep:
            self._idle_put(entry)

    async def _fill_min_size(self, *, raise_errors: bool) -> bool:
        """Open connections until ``min_size`` are open, all at once.

        Returns False when an open failed (and ``raise_errors`` is off).
        """
        wanted = self._min_size - self._slots
        if wanted <= 0 or self._closed:
            return True
        self._slots += wanted
        self._opening += wanted
        results = await asyncio.gather(
            *(self._open_spare() for _ in range(wanted)), return_exceptions=True
        )
        ok = True
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                if raise_errors:
                    raise result
                ok = False
                logger.warning("pool %s: could not open a connection: %s", self._name, result)
        return ok

    async def _open_spare(self) -> None:
        try:
            conn, host = await self._connect()
        except BaseException:
            self._opening -= 1
            self._free_slot()
            raise
        self._opening -= 1
        entry = self._new_entry(conn, host)
        if self._closed:
            self._close(entry, "cleared", graceful=True)
            self._free_slot()
            return
        self._offer(entry)

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

    # ---------------------------------------------------------- inspection

    @property
    def name(self) -> str:
        """How logs, errors and stats name this pool (never shows the password)."""
        return self._name

    @property
    def params(self) -> ConnectParams:
        """The connection parameters every connection is opened with."""
        return self._params

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
        return self._recycle

    def __len__(self) -> int:
        """Idle connections in the queue now."""
        return self._idle.qsize()

    async def clear(self) -> None:
        """Close every idle connection (checked-out ones are left alone)."""
        while len(self._idle_items):
            entry = self._idle_get()
            self._close(entry, "pool closed", graceful=True)
            self._slots -= 1
        self._note_drained()

    def stats(self) -> PoolStats:
        """A snapshot of gauges and counters (see :class:`PoolStats`)."""
        idle = self._idle.qsize()
        in_use = len(self._in_use)
        return PoolStats(
            name=self._name,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            open=idle + in_use,
            idle=idle,
            in_use=in_use,
            opening=self._opening,
            # tuple() copies in one step, so a scrape from another thread
            # (a metrics server) never iterates a deque being changed.
            waiting=sum(1 for fut in tuple(self._waiters) if not fut.done()),
            opened=self._opened_total,
            closed=self._closed_total,
            recycled=self._recycled_total,
            discarded=self._discarded_total,
            acquires=self._acquires,
            timeouts=self._timeouts,
            wait_time=self._wait_time,
            hosts=self._hostset.stats(
                [entry.host for entry in tuple(cast("Iterable[_Entry]", self._idle_items))],
                [entry.host for entry in tuple(self._in_use.values())],
            ),
        )

    def _check_invariants(self) -> None:
        """Assert the bookkeeping is consistent (for tests)."""
        idle = self._idle.qsize()
        problems = []
        if self._slots != idle + len(self._in_use) + self._opening:
            problems.append(
                f"slots {self._slots} != idle {idle} + in_use {len(self._in_use)}"
                f" + opening {self._opening}"
            )
        if self._max is not None and self._slots > self._max:
            problems.append(f"slots {self._slots} > max {self._max}")
        if idle > self._pool_size:
            problems.append(f"idle {idle} > pool_size {self._pool_size}")
        live_waiters = sum(1 for fut in self._waiters if not fut.done())
        if live_waiters and idle:
            problems.append(f"{live_waiters} waiting while {idle} idle")
        if live_waiters and self._max is not None and self._slots < self._max:
            problems.append(f"{live_waiters} waiting while a slot is free")
        if self._opening < 0:
            problems.append(f"opening {self._opening} < 0")
        if self._closed and idle:
            problems.append(f"closed with {idle} idle")
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
        return self._pool._acquire(self._timeout).__await__()

    async def __aenter__(self) -> Any:
        pool = self._pool
        conn = pool._checkout_now() if self._timeout is _UNSET else None
        if conn is None:
            conn = await pool._acquire(self._timeout)
        self._conn = conn
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        pool = self._pool
        entry = pool._begin_release(conn, exc)
        if entry is not None:
            await pool._reset_and_check_in(entry)


async def create_pool(dsn: str | ConnectParams | None = None, **options: Any) -> Pool:
    """``Pool(dsn, **options)``, opened: the reaper runs and ``min_size`` are open."""
    pool = Pool(dsn, **options)
    await pool.open()
    return pool


def _merge_dsn_options(given: dict[str, Any], from_dsn: dict[str, Any]) -> dict[str, Any]:
    """Pool options from the DSN replace defaults; one set both ways must agree."""
    merged = dict(given)
    for option, value in from_dsn.items():
        argument = given[option]
        if argument != POOL_OPTION_DEFAULTS[option] and argument != value:
            raise ValueError(
                f"{option} is given both in the DSN ({value!r}) and as an argument ({argument!r})"
            )
        merged[option] = value
    return merged


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _caller_stack() -> list[str]:
    """The current stack, minus the pool's own frames at its end: where acquire() was called."""
    frames = traceback.extract_stack()
    while frames and os.path.dirname(os.path.abspath(frames[-1].filename)) == _PACKAGE_DIR:
        frames.pop()
    return traceback.format_list(frames)


async def _within(step: Awaitable[Any], seconds: float | None) -> Any:
    """``asyncio.wait_for(step, seconds)``, for an I/O step of the pool.

    When the caller is cancelled, wait_for cancels the step and waits for it;
    aiomysql may turn that cancellation into an OperationalError, which
    nobody would read, and asyncio would log "Task exception was never
    retrieved". The step's outcome is read here instead.
    """
    if seconds is None:
        return await step
    task = asyncio.ensure_future(step)
    task.add_done_callback(_read_outcome)
    return await asyncio.wait_for(task, seconds)


def _read_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _brief(exc: BaseException) -> str:
    """An error in a few words for a host's down reason (drivers' messages
    never contain the password)."""
    text = " ".join(str(arg) for arg in exc.args) if exc.args else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds or None, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds or None, got {value!r}")
    return float(value)


def _pre_ping_threshold(pre_ping: object) -> float | None:
    if pre_ping is True:
        return DEFAULT_PRE_PING_AFTER
    if pre_ping is False or pre_ping is None:
        return None
    return _check_seconds("pre_ping", pre_ping, allow_zero=True)
