"""Drop-in mode: existing ``aiomysql.connect`` code runs on pools, unchanged.

``enable()`` replaces ``aiomysql.connect`` (and ``aiomysql.connection.connect``,
which it re-exports) with a function that checks a connection out of one
:class:`PoolManager`, keyed by the connect parameters; ``disable()`` puts the
very same original objects back.

How a pooled connection goes back
---------------------------------
While checked out, the connection object carries two instance attributes
that shadow its class's methods: ``close()`` and ``ensure_closed()`` return
it to its pool instead of closing it. They are removed before the pool sees
the connection again, so the pool's own close (and the caller of a stale
reference, later) reaches the real ``Connection.close``.

* ``conn.close()`` is synchronous in aiomysql, and a return may need a round
  trip (rollback or reset), so it starts a task; the tasks are tracked (kept
  referenced, failures logged) and ``await disable()`` waits for them.
  ``await conn.ensure_closed()`` and leaving ``async with
  aiomysql.connect(...)`` wait for the return to finish.
* The exception being handled when ``close()``/``ensure_closed()`` is called
  (``except: conn.close(); raise``), or the one leaving ``async with
  aiomysql.connect(...)``, goes to the pool: a connection-loss error or an
  interruption (cancellation, timeout) discards the connection. A socket the
  server closed (``KILL``, ``wait_timeout``) is discarded anyway.
* aiomysql itself calls ``self.close()`` when it loses the connection or is
  cancelled mid-reply (and ``async with conn:`` does on an exception). Those
  calls, made from aiomysql's connection module, really close the socket and
  give the slot back: the connection is discarded, never reused half-read.
* A second ``close()`` is a no-op. Using a connection after closing it is a
  bug in aiomysql too; here it may use a connection someone else checked out.

``disable()`` is synchronous, as the API shows it (``mysqlpool.disable()``):
it restores the attributes, refuses new checkouts, stops the pools'
background tasks and closes every idle connection at once; a connection still
checked out stays usable and is closed when its holder closes it. What it
returns may be awaited (``await mysqlpool.disable()``, or
``await mysqlpool.disable().wait(timeout)``) to also wait for
those and for the return tasks: after that, nothing of the drop-in mode is
left running. Not awaiting it starts no task.

Differences from plain aiomysql (see README):

* ``reset_on_return`` defaults to ``"reset"`` (COM_RESET_CONNECTION), since
  legacy code expects a fresh session from ``connect()``: user variables,
  temporary tables, ``select_db()``, ``autocommit()`` and ``set_charset()``
  must not leak to the next caller. Pass ``reset_on_return="rollback"`` for
  the cheaper return when the code changes no session state.
* ``connect()`` waits (up to the pool's ``timeout``) when ``pool_size +
  max_overflow`` connections are in use, and raises ``PoolTimeout``.
* A connection the code never closes is never returned (aiomysql's garbage
  collection close does not happen: the pool references it).
* The pools belong to the event loop that first used them; ``disable()``
  before that loop ends.
* ``aiomysql.create_pool`` is left alone (aiomysql's pool already pools), as
  is a ``connect`` someone imported by name before ``enable()``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
from collections.abc import Generator
from types import ModuleType, TracebackType
from typing import Any, Literal

import aiomysql
import aiomysql.connection
import aiomysql.utils

from . import _driver_aiomysql
from ._extras import aiomysql_keyword_defaults
from ._manager import PoolManager
from ._params import ConnectParams
from ._pool import Pool

__all__ = ["disable", "enable", "is_enabled"]

logger = logging.getLogger("mysqlpool")

# Every module attribute that holds aiomysql's connect and that user code
# could have imported it from. (aiomysql.pool.connect is aiomysql's own
# pool's, left alone.)
_TARGETS: tuple[tuple[ModuleType, str], ...] = (
    (aiomysql, "connect"),
    (aiomysql.connection, "connect"),
)

# aiomysql closes a connection itself, from this module, when it can't trust
# it any more (lost, cancelled mid-reply, protocol error); the pool closes
# connections through its driver, _driver_aiomysql (terminate()). Those
# closes are real.
_CLOSERS = (vars(aiomysql.connection), vars(_driver_aiomysql))

# Instance attributes set on a checked-out connection.
_OVERRIDES = ("close", "ensure_closed", "_mysqlpool_lease")


class _DropIn:
    """Everything one ``enable()`` set up, so ``disable()`` can undo exactly that."""

    def __init__(self, options: dict[str, Any], manager: PoolManager) -> None:
        self.options = options
        self.manager = manager
        self.originals: dict[tuple[ModuleType, str], Any] = {}
        self.patched: Any = None
        self.active = True
        self.loop: asyncio.AbstractEventLoop | None = None
        # Return tasks started by conn.close(): referenced until done.
        self.tasks: set[asyncio.Task[None]] = set()

    def task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("mysqlpool drop-in: returning a connection failed: %r", task.exception())


_state: _DropIn | None = None


class _Lease:
    """One checkout of one connection: what its ``close()`` gives back, once."""

    __slots__ = ("conn", "finished", "pool", "state", "task")

    def __init__(self, state: _DropIn, pool: Pool, conn: Any) -> None:
        self.state = state
        self.pool = pool
        self.conn = conn
        self.task: asyncio.Task[None] | None = None
        self.finished = False
        attrs = conn.__dict__
        attrs["close"] = self.close
        attrs["ensure_closed"] = self.ensure_closed
        attrs["_mysqlpool_lease"] = self

    def _uninstall(self) -> None:
        attrs = self.conn.__dict__
        for name in _OVERRIDES:
            # Only ours: never remove something the caller set meanwhile.
            if name in attrs and getattr(attrs[name], "__self__", attrs[name]) is self:
                del attrs[name]

    def close(self) -> None:
        """``conn.close()``: give the connection back to its pool (in a task)."""
        caller = sys._getframe(1).f_globals
        if any(caller is closer for closer in _CLOSERS):
            # aiomysql gave up on it, or the pool terminates it: close the
            # socket now, free the slot.
            self._uninstall()
            self.conn.close()
        self.start(sys.exc_info()[1])

    async def ensure_closed(self) -> None:
        """``await conn.ensure_closed()``: give it back and wait until it is."""
        await self.give_back(sys.exc_info()[1])

    def start(self, exc: BaseException | None) -> None:
        if self.task is not None or self.finished:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop to return it on (closed from sync code): close it for
            # real so no socket leaks; the pool frees the slot when it closes.
            self.finished = True
            self._uninstall()
            self.conn.close()
            return
        task = loop.create_task(self._release(exc), name="mysqlpool drop-in return")
        self.task = task
        self.state.tasks.add(task)
        task.add_done_callback(self.state.task_done)

    async def give_back(self, exc: BaseException | None) -> None:
        self.start(exc)
        if self.task is not None:
            # Shielded: a cancelled caller doesn't cut the return short.
            await asyncio.shield(self.task)

    async def _release(self, exc: BaseException | None) -> None:
        self._uninstall()
        self.finished = True
        await self.pool.release(self.conn, error=exc)


def _lease_of(conn: Any) -> _Lease | None:
    lease = conn.__dict__.get("_mysqlpool_lease") if conn is not None else None
    return lease if isinstance(lease, _Lease) else None


class _PooledConnect(aiomysql.utils._ConnectionContextManager):  # type: ignore[misc]
    """What the patched ``connect()`` returns: awaitable, and an async
    context manager whose exit gives the connection back (with the
    exception, so a lost connection is discarded)."""

    __slots__ = ("_lease",)
    _obj: Any

    def __init__(self, coro: Any) -> None:
        super().__init__(coro)
        self._lease: _Lease | None = None

    async def __aenter__(self) -> Any:
        conn = await super().__aenter__()
        # Kept here: aiomysql may drop the connection's overrides (see close()).
        self._lease = _lease_of(conn)
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn: Any = self._obj
        lease, self._obj, self._lease = self._lease, None, None
        if lease is not None:
            await lease.give_back(exc)
        elif conn is not None:
            # Not ours (connected after disable()): aiomysql's own exit.
            if exc_type is not None:
                conn.close()
            else:
                await conn.ensure_closed()


async def _check_out(state: _DropIn, original: Any, kwargs: dict[str, Any]) -> Any:
    if not state.active:
        # disable() ran between the call and the await: behave as it says.
        return await original(**kwargs)
    kwargs.pop("loop", None)  # connections are made on the running loop
    kwargs.setdefault("autocommit", False)  # aiomysql's default, not ConnectParams'
    host = kwargs.get("host")
    if isinstance(host, str) and "," in host:
        # A legacy app's one host setting may hold a list: "h1:3307,h2:3308".
        default_port = kwargs.pop("port", 3306)
        kwargs["hosts"] = [
            item if ":" in item else (item, default_port) for item in host.split(",")
        ]
        del kwargs["host"]
    params = ConnectParams(**kwargs)
    loop = asyncio.get_running_loop()
    if state.loop is None:
        state.loop = loop
    elif state.loop is not loop:
        raise RuntimeError(
            "mysqlpool drop-in pools belong to the event loop that first used them; "
            "call mysqlpool.disable() before that loop ends, and enable() again"
        )
    pool = await state.manager.get_pool(params)
    conn = await pool.acquire()
    _Lease(state, pool, conn)
    return conn


def _make_connect(state: _DropIn, original: Any) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> _PooledConnect:
        # Wrong keywords fail here, at the call, as with aiomysql.
        arguments = signature.bind(*args, **kwargs).arguments
        return _PooledConnect(_check_out(state, original, dict(arguments)))

    connect.__doc__ = (
        "aiomysql.connect, patched by mysqlpool.enable(): checks a connection out "
        "of a pool; its close() gives it back.\n\n" + (original.__doc__ or "")
    )
    return connect


def enable(
    pool_size: int = 5, recycle: float | Literal["auto"] | None = "auto", **pool_options: Any
) -> PoolManager:
    """Make ``aiomysql.connect`` check connections out of pools.

    From now on ``await aiomysql.connect(**kw)`` and ``async with
    aiomysql.connect(**kw) as conn`` take a connection from the pool for
    those parameters (one pool per identity, as :class:`PoolManager`
    keys them), and the connection's ``close()`` / ``ensure_closed()``
    give it back. Meant for migrating an existing aiomysql code base; new
    code should use :class:`Pool` directly.

    Args:
        pool_size: as :class:`Pool` takes it, for every pool.
        recycle: as :class:`Pool` takes it, for every pool.
        pool_options: the other options of :class:`Pool`, for every pool.
            ``reset_on_return`` defaults to ``"reset"`` here, so each
            ``connect()`` gets a session as fresh as a new connection's.

    Returns:
        The :class:`PoolManager` behind it (for ``stats()``).

    Calling it again with the same options does nothing and returns the same
    manager.

    Raises:
        ValueError, TypeError: a bad pool option.
        RuntimeError: already enabled with other options (``disable()`` first).
    """
    global _state
    options: dict[str, Any] = {"pool_size": pool_size, "recycle": recycle, **pool_options}
    options.setdefault("reset_on_return", "reset")
    if _state is not None:
        if options != _state.options:
            raise RuntimeError(
                "mysqlpool drop-in mode is already enabled with other options; "
                "call mysqlpool.disable() first"
            )
        return _state.manager
    state = _DropIn(options, PoolManager(**options))  # validates the options
    # ConnectParams reads aiomysql.connect's signature once: read the real one.
    aiomysql_keyword_defaults()
    original = aiomysql.connection.connect
    state.patched = _make_connect(state, original)
    for module, name in _TARGETS:
        state.originals[(module, name)] = getattr(module, name)
    for module, name in _TARGETS:
        setattr(module, name, state.patched)
    _state = state
    return state.manager


def is_enabled() -> bool:
    """Whether drop-in mode is on."""
    return _state is not None


def disable() -> _Disabled:
    """Undo :func:`enable`: restore aiomysql and close the pools.

    At once: every patched attribute is the very object it was before,
    checkouts are refused, idle connections are closed and the pools'
    background tasks are stopped. A connection still checked out keeps
    working and is closed when its holder closes it.

    The return value may be awaited: ``await disable()`` (or ``await
    disable().wait(timeout)``) also
    waits for checked-out connections to come back (closing those still out
    after ``timeout`` seconds) and for the pending returns. Not awaiting it
    starts nothing.

    Harmless when drop-in mode is off.
    """
    global _state
    state, _state = _state, None
    if state is None:
        return _Disabled(None)
    state.active = False
    for (module, name), original in state.originals.items():
        if getattr(module, name, None) is state.patched:
            setattr(module, name, original)
        else:
            logger.warning(
                "mysqlpool.disable(): %s.%s was replaced by someone else since enable(); "
                "left as it is",
                module.__name__,
                name,
            )
    state.manager.close_nowait()
    return _Disabled(state)


class _Disabled:
    """What :func:`disable` returns: awaiting it waits until all is closed."""

    __slots__ = ("_state",)

    def __init__(self, state: _DropIn | None) -> None:
        self._state = state

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for checked-out connections (terminated after ``timeout`` s)
        and for pending returns."""
        state = self._state
        if state is None:
            return
        await state.manager.close(timeout)
        while state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()
