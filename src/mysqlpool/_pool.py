"""The pool: bounded, fair, and safe to cancel anywhere.

:class:`Pool` is the public face: it checks its options, wires the parts
together, and runs the lifecycle (open, close, terminate). What it owns and
every change to that live in :class:`~mysqlpool._state.PoolState`, whose
methods never ``await``; the acquire (``_acquire``) and the reset on return
(``_reset``) await I/O between those changes.

The rest lives next door, each in its module, and never touches the counts:
the options (``_config``), the waiters and their deadlines (``_waiters``),
opening connections across hosts (``_connector``), host health
(``_health``) and its prober (``_prober``), the reaper (``_reaper``), the
age rules (``_aging``), leak warnings (``_leaks``), hooks (``_hooks``),
side tasks and KILL QUERY (``_background``), and the driver (``_driver``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal

from ._acquire import AcquireContext, open_into_slot
from ._aging import Aging
from ._background import join_stopped
from ._clock import MONOTONIC, Clock, wait_until
from ._config import PoolOptions, ResetMode, check_seconds
from ._connector import Connector
from ._driver import InitCallback, driver_for
from ._dsn import resolve_params
from ._entry import Entry
from ._health import HostHealth
from ._hooks import ConnectionHook, DiscardHook, Hooks, check_init
from ._hosts import Host, HostSet, LoadBalance, Target
from ._leaks import LeakDetector
from ._options import merge_dsn_options, split_pool_options
from ._params import ConnectParams
from ._prober import Prober
from ._reaper import Reaper
from ._reset import Resetter
from ._state import DONE, PoolState
from ._stats import PoolStats
from .errors import PoolClosed

__all__ = ["Pool", "create_pool"]

logger = logging.getLogger("mysqlpool")

# acquire() builds its context with this instead of calling the class.
_new_object = object.__new__

# Marker meaning "no timeout argument given: use the pool's".
_UNSET: Any = object()


class Pool:
    """An asyncio pool of aiomysql (or asyncmy) connections to a MySQL or
    MariaDB server, or to one of several (a Galera cluster, a primary with
    replicas).

    The pool's options (``pool_size``, ``max_overflow``, ``timeout``,
    ``recycle``, ``max_lifetime``, ``pre_ping``, ``reset_on_return``,
    ``min_size``, ``reaper_interval``, ``leak_timeout``, ``lifo``, ``name``,
    ``kill_query_on_cancel``, ``load_balance``, ``target``, ``max_waiting``)
    are described in
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
        connect_kwargs: other connect keywords of the driver (``driver="asyncmy"``
            chooses asyncmy; see ``docs/drivers.md``).

    Raises:
        ValueError: for an option out of range or a malformed DSN (the message
            names the option and never shows the password).
    """

    # Slots, not an instance dict: attribute lookups on the hot path get
    # specialized by CPython 3.11+ (benchmarks/hotpath.py); __weakref__: the
    # Prometheus collector holds weak references to pools.
    __slots__ = (
        "__weakref__", "_aging", "_clock", "_connector", "_fill_task", "_name", "_options",
        "_params", "_prober", "_reaper", "_start_once", "_started", "_state", "_terminated",
        "_timeout",
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
        max_waiting: int | None = None,
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
            "max_waiting": max_waiting,
        }
        if isinstance(dsn, str):
            dsn, from_dsn = split_pool_options(dsn)
            given = merge_dsn_options(given, from_dsn)
        options = self._options = PoolOptions(**given)
        params = self._params = resolve_params(dsn, connect_kwargs)
        name = self._name = options.name if options.name is not None else str(params)
        hooks = (on_connect, on_checkout, on_checkin, on_discard)
        clock = self._clock = clock if clock is not None else MONOTONIC
        init = check_init(init)
        driver = driver_for(params)
        self._timeout = options.timeout
        self._aging = aging = Aging(options.recycle, options.max_lifetime)
        hostset = HostSet(params, options.load_balance, options.target)
        self._prober = Prober(hostset, clock, self._adopt_probe, name)
        health = HostHealth(
            hostset,
            clock,
            driver,
            name,
            on_down=lambda host: state.retire_idle(lambda entry, _: _host_down(entry, host)),
            wake_prober=self._prober.wake,
        )
        leak_timeout = options.leak_timeout
        state = self._state = PoolState(
            name=name,
            options=options,
            clock=clock,
            driver=driver,
            aging=aging,
            health=health,
            hostset=hostset,
            # None when there are none: the hot path then skips them in one test.
            hooks=Hooks(name, *hooks) if any(h is not None for h in hooks) else None,
            leaks=None if leak_timeout is None else LeakDetector(clock, leak_timeout, name),
            reset=Resetter(params, init, options.timeout),
        )

        def reap_idle() -> None:  # a reaper pass: the checkout's test, between uses
            state.retire_idle(lambda entry, now: aging.unfit(entry, now, driver.probe(entry.conn)))

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
            init,
            check_state=health.multi or options.target != "any",
            connect_timeout=params.connect_timeout,
            pool_name=name,
            on_recycle_change=reaper.reschedule,
        )
        self._started = False  # open() ran (or the first acquire that waited did it)
        # Bound once and handed to every acquire; None once the pool has started.
        self._start_once: Callable[[], None] | None = self._start
        self._terminated = False
        self._fill_task: asyncio.Future[bool] | None = None  # open()'s min_size fill

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Start the reaper and open ``min_size`` connections. Idempotent.

        Raises:
            PoolClosed: the pool was closed (a closed pool never reopens).
            pymysql.err.MySQLError: the driver's error when a ``min_size``
                connection can't be opened (the pool stays open and the
                reaper keeps trying).
        """
        if self._state.closed:
            raise PoolClosed(f"pool {self._name} is closed; a closed pool can't be reopened")
        self._start()
        fill = self._fill_task
        if fill is None:
            fill = self._fill_task = asyncio.ensure_future(self._fill_min_size(raise_errors=True))
        try:
            await asyncio.shield(fill)
        except asyncio.CancelledError:
            if fill.cancelled() and self._state.closed:  # close() stopped the fill, not our caller
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
        self._start_once = None
        self._state.watch_drain()
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
        clock, state = self._clock, self._state
        deadline = None if timeout is None else clock.now() + timeout
        self.close_nowait()
        background = [self._reaper.task, self._prober.task, self._fill_task]
        drained = state.drained
        if (
            drained is not None
            and not self._terminated
            and not await wait_until(drained, clock, deadline)
        ):
            logger.warning(
                "pool %s: %d connection(s) still checked out after %s s; closing them",
                self._name,
                len(state.in_use),
                timeout,
            )
            self.terminate()
        # KILL QUERY connections do real I/O: what is left of the timeout, in real time.
        remaining = None if deadline is None else max(0.0, deadline - clock.now())
        await state.side_tasks.join(remaining)
        await join_stopped(background)

    def close_nowait(self) -> None:
        """The synchronous half of :meth:`close`: refuse new acquires (waiters
        get :class:`PoolClosed`), stop the background tasks and close the idle
        connections, all now. Connections still checked out keep working and
        are closed as they come back; ``await close()`` later waits for them.
        Idempotent.
        """
        if self._state.closed:
            return
        self._reaper.stop()
        self._prober.stop()
        if self._fill_task is not None:
            self._fill_task.cancel()
        self._state.shut()
        logger.debug("pool %s: closing", self._name)

    def terminate(self) -> None:
        """Close every connection now, checked-out ones included.

        Their holders' next statement fails with the driver's error; their
        ``release()`` is accepted and just frees the slot.
        """
        self.close_nowait()
        self._terminated = True
        self._state.close_checked_out()

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

    # ------------------------------------------------------ acquire, release

    def acquire(self, timeout: float | None = _UNSET) -> AcquireContext:
        """Check out a connection: ``async with pool.acquire() as conn`` or
        ``conn = await pool.acquire()`` (then ``await pool.release(conn)``).

        ``timeout`` overrides the pool's wait limit for this call (None waits
        forever). Waiters are served first come, first served.

        Raises:
            PoolTimeout: no connection within the timeout.
            PoolOverloaded: (a PoolTimeout) ``max_waiting`` acquirers were
                already waiting; raised at once.
            PoolClosed: the pool is closing or closed.
            pymysql.err.MySQLError: the driver's error if opening a new
                connection fails.
        """
        if timeout is _UNSET:
            # AcquireContext(...) without the __init__ call: CPython 3.11
            # doesn't specialize a class call (benchmarks/hotpath.py).
            ctx = _new_object(AcquireContext)
            ctx.state = self._state
            ctx.connector = self._connector
            ctx.start = self._start_once
            ctx.timeout = self._timeout
            ctx.conn = None
            return ctx
        timeout = check_seconds("timeout", timeout, allow_zero=True)
        return AcquireContext(self._state, self._connector, self._start_once, timeout)

    def try_acquire(self) -> Any:
        """A connection now, or None: never waits, never does I/O.

        Returns an idle connection that needs no ping (within ``pre_ping``'s
        threshold), checked out as by :meth:`acquire`; None when there is
        none (all in use, a new one would have to be opened, or the pool is
        not open). Give it back with :meth:`release`.
        """
        return self._state.try_acquire()

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
        await self._state.give_back(conn, error, discard)

    def release_nowait(
        self, conn: Any, *, discard: bool = False, error: BaseException | None = None
    ) -> Awaitable[None] | None:
        """The synchronous half of :meth:`release`: give back ``conn`` now,
        and await only what is left.

        For a caller that gives connections back from synchronous code but
        can await when it must (an ORM bridge, which awaits from a greenlet):
        most returns need no I/O, and this spares them a coroutine. Takes the
        same arguments as :meth:`release` and decides the same fate.

        Returns:
            None when the return is settled: the connection is back in the
            pool (or handed to a waiter, or closed). Otherwise the reset on
            return (a ROLLBACK, or COM_RESET_CONNECTION), which checks the
            connection in when it ends; the caller must await it, since until
            then the connection keeps its slot.

        Raises:
            PoolError: ``conn`` did not come from this pool, or was already
                released.
        """
        pending = self._state.give_back(conn, error, discard)
        return None if pending is DONE else pending

    def discard(self, conn: Any) -> None:
        """Give back a checked-out connection to be closed, synchronously.

        :meth:`release` with ``discard=True`` for a caller that can't await:
        a garbage-collection callback, an ORM returning a connection it
        abandoned. Closing needs no round trip, so the slot is free (and
        handed to the oldest waiter) when this returns.

        Raises:
            PoolError: ``conn`` did not come from this pool, or was already
                released.
        """
        self._state.give_back(conn, None, True)  # with discard, always decided at once

    def transaction_ended(self, conn: Any) -> None:
        """Note that the holder of ``conn`` just ended its transaction itself.

        For libraries that manage transactions (the SQLAlchemy bridge): call
        it right after a COMMIT or ROLLBACK of your own succeeded. If the
        connection then comes back with no statement run since, the pool
        skips its ``reset_on_return="rollback"`` round trip; a statement run
        after this call makes the pool roll back as usual.

        Raises:
            PoolError: ``conn`` is not checked out from this pool.
        """
        self._state.transaction_ended(conn)

    # ------------------------------------------------------ background work

    async def _fill_min_size(self, *, raise_errors: bool) -> bool:
        """Open connections until ``min_size`` are open, all at once.

        Returns False when an open failed (and ``raise_errors`` is off).
        """
        state = self._state
        wanted = self._options.min_size - state.slots
        if wanted <= 0 or state.closed:
            return True
        state.reserve(wanted)

        async def open_spare() -> None:
            entry = await open_into_slot(state, self._connector, None)
            state.check_in(entry, None)

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
        """The prober's turn on a host that is down: the pool keeps its
        connection if it has a place for it (see :meth:`PoolState.adopt`)."""
        conn = await self._connector.probe(host)
        if conn is not None and not self._state.adopt(conn, host):
            self._state.driver.close(conn, graceful=True)

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
        return self._options.pool_size

    @property
    def closed(self) -> bool:
        """True once ``close()`` or ``terminate()`` began."""
        return self._state.closed

    @property
    def recycle(self) -> float | None:
        """The recycle age in use (for ``"auto"``, None until the first connection)."""
        return self._aging.recycle

    def __len__(self) -> int:
        """Idle connections in the queue now."""
        return len(self._state.idle)

    def clear(self) -> Awaitable[None]:
        """Close every idle connection now (checked-out ones are left alone).

        They count as recycled, with the reason ``"cleared"``. Returns an
        awaitable that is already done, so ``await pool.clear()`` works too.
        """
        self._state.retire_idle(lambda entry, now: "cleared")
        return DONE

    def stats(self) -> PoolStats:
        """A snapshot of gauges and counters (see :class:`PoolStats`)."""
        return self._state.stats()

    def check_invariants(self) -> None:
        """Check that the pool's books balance; for tests and debugging.

        Raises:
            AssertionError: naming each inconsistency found (see
                :func:`mysqlpool._stats.imbalances`).
        """
        problems = self._state.imbalances()
        if problems:
            raise AssertionError(f"pool {self._name}: " + "; ".join(problems))

    def __repr__(self) -> str:
        s = self.stats()
        state = "closed" if self.closed else "open" if self._started else "new"
        return (
            f"<Pool {self._name!r} {state} size={s.pool_size}"
            f" open={s.open} idle={s.idle} in_use={s.in_use} waiting={s.waiting}>"
        )


async def create_pool(dsn: str | ConnectParams | None = None, **options: Any) -> Pool:
    """``Pool(dsn, **options)``, opened: the reaper runs and ``min_size`` are open."""
    pool = Pool(dsn, **options)
    await pool.open()
    return pool


def _host_down(entry: Entry, host: Host) -> str | None:
    return "host down" if entry.host is host else None
