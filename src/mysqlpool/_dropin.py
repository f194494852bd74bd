"""Drop-in mode: existing ``aiomysql.connect`` code runs on pools, unchanged.

``enable()`` replaces ``aiomysql.connect`` (and ``aiomysql.connection.connect``,
which it re-exports) with a function that checks a connection out of one
:class:`PoolManager`, keyed by the connect parameters; ``disable()`` puts the
very same original objects back.

How a pooled connection goes back
---------------------------------
Each ``connect()`` hands its caller an object of its own: an instance of a
subclass of the connection's class that shares the pooled connection's
attribute dict (so it *is* that connection for every method and attribute,
and ``isinstance`` holds), with ``close()`` and ``ensure_closed()`` that
give it back. Giving it back detaches that object first, at once: it gets a
dict of its own, in the state aiomysql's ``close()`` leaves, so from then
on it is a closed aiomysql connection, whatever the pool does with the
connection next. ``closed`` is True, a statement raises ``InterfaceError``
"Not connected", and a second ``close()`` or ``ensure_closed()`` does
nothing, as in aiomysql; a stale reference never reaches the next holder,
nor cuts the pool's reset short. The plain :class:`Pool` path pays nothing
for it (the pool's own connection object is untouched), and a query on a
drop-in connection costs what it costs on the pool's object (measured in
docs/dropin.md).

* ``conn.close()`` is synchronous in aiomysql, and a return may need a round
  trip (rollback or reset), so it starts a task; the tasks are tracked (kept
  referenced, failures logged) and ``await disable()`` waits for them.
  ``await conn.ensure_closed()`` and leaving ``async with
  aiomysql.connect(...)`` wait for the return to finish.
* The exception being handled when ``close()``/``ensure_closed()`` is called
  (``except: conn.close(); raise``), or the one leaving ``async with
  aiomysql.connect(...)``, goes to the pool, which decides from it (a lost
  connection, an interruption, an error raised mid-reply discard the
  connection). A socket the server closed (``KILL``, ``wait_timeout``) is
  discarded anyway.
* aiomysql itself calls ``self.close()`` when it loses the connection or is
  cancelled mid-reply (and ``async with conn:`` does on an exception). Those
  calls, made from aiomysql's connection module, really close the socket and
  give the slot back: the connection is discarded, never reused half-read.

``disable()`` is synchronous, as the API shows it (``mysqlpool.disable()``):
it restores the attributes, refuses new checkouts, stops the pools'
background tasks and closes every idle connection at once; a connection still
checked out stays usable and is closed when its holder closes it. What it
returns may be awaited (``await mysqlpool.disable()``, or
``await mysqlpool.disable().wait(timeout)``) to also wait for
those and for the return tasks: after that, nothing of the drop-in mode is
left running. Not awaiting it starts no task.

Differences from plain aiomysql (README lists them too; everything else is
the same, as tests/test_dropin_parity.py checks):

* ``connect()`` waits (up to the pool's ``timeout``) when ``pool_size +
  max_overflow`` connections are in use, and raises ``PoolTimeout``.
* A connection the code never closes is never returned, and garbage
  collection neither closes it nor warns as aiomysql's does (the pool
  references it).
* ``close()`` returns the connection in a task (see above).
* The server sees fewer sessions (``CONNECTION_ID()`` repeats, a closed
  connection's session stays open in the pool) and the pool's own
  statements (``recycle="auto"``'s ``SELECT @@SESSION.wait_timeout``,
  pings, resets); the code sees none of them (``insert_id()``,
  ``affected_rows()``, warnings).
* The object is an instance of a subclass of the connection class
  (``isinstance`` holds, ``type(conn) is aiomysql.Connection`` doesn't).
* ``reset_on_return`` defaults to ``"reset"`` (COM_RESET_CONNECTION, then
  the database, character set, autocommit, sql_mode and init_command the
  connection was opened with, option files included), since legacy code
  expects a fresh session from ``connect()``. A connection opened without a
  database that comes back with one selected is closed (no statement
  unselects a database). ``reset_on_return="rollback"`` is cheaper, but then
  user variables, temporary tables, ``select_db()``, ``autocommit()``,
  ``set_charset()`` and warnings carry over to the next ``connect()``
  (and with ``None``, an open transaction too).
* TLS is never silently dropped: ``connect(ssl=...)`` to a server that offers
  no TLS raises ``OperationalError`` 2026 where aiomysql goes on in
  plaintext; ``enable(ssl_allow_plaintext=True)`` gives aiomysql's behaviour
  back, with a warning logged at ``enable()`` and for each such connection.
  A password is never sent in clear (``mysql_clear_password``) without TLS.
* A host list in the host setting (``"h1:3307,h2:3308"``) gets one pool
  over those hosts.
* ``loop=`` is ignored: the pools belong to the event loop that first used
  them; ``disable()`` before that loop ends.
* ``aiomysql.create_pool`` is left alone (aiomysql's pool already pools), as
  is a ``connect`` someone imported by name before ``enable()``.

asyncmy
-------
When asyncmy is installed (and new enough for the pools' asyncmy driver),
``asyncmy.connect`` and ``asyncmy.connection.connect`` are patched too, onto
pools with ``driver="asyncmy"``; the keywords are asyncmy's (``database``,
``port=0``, ``connect_timeout`` 10 s by default). asyncmy's connection keeps
its state in C slots, which no second object can share, so its holders get
a proxy instead (``_dropin_asyncmy.AsyncmyHolder``), cut off at the return
the same way; what that changes (cursors made before the return keep the
real connection, the slot of a connection asyncmy closed itself comes back
at the holder's close) is in that module and docs/dropin.md.
``asyncmy.create_pool`` is left alone.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Generator
from types import ModuleType, TracebackType
from typing import Any, Literal

import aiomysql
import aiomysql.connection
import aiomysql.utils

from ._driver import Driver, driver_for
from ._extras import aiomysql_keyword_defaults, keyword_defaults
from ._manager import PoolManager
from ._params import ConnectParams
from ._pool import Pool
from .errors import DriverNotInstalled

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
# it any more (lost, cancelled mid-reply, protocol error): that close is real.
_AIOMYSQL_CONNECTION = vars(aiomysql.connection)


class _DropIn:
    """Everything one ``enable()`` set up, so ``disable()`` can undo exactly that."""

    def __init__(self, options: dict[str, Any], manager: PoolManager) -> None:
        self.options = options
        self.manager = manager
        self.ssl_allow_plaintext = False
        self.originals: dict[tuple[ModuleType, str], Any] = {}
        # What each patched attribute holds while enabled.
        self.replacements: dict[tuple[ModuleType, str], Any] = {}
        self.active = True
        self.loop: asyncio.AbstractEventLoop | None = None
        # Return tasks started by conn.close(): referenced until done.
        self.tasks: set[asyncio.Task[None]] = set()
        # Checkouts whose return has not started: disable() may have to
        # give back those it closed.
        self.out: set[_Lease] = set()
        # Each pool's driver, asked once (driver_for imports by name).
        self.drivers: dict[Pool, Driver] = {}

    def task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("mysqlpool drop-in: returning a connection failed: %r", task.exception())


_state: _DropIn | None = None


class _Lease:
    """One checkout of one connection: what its holder's ``close()`` gives back, once.

    ``conn`` is the pool's connection; the holder gets ``view``, an object
    of its own sharing ``conn``'s state (see :func:`_held_class`).
    """

    __slots__ = ("closed_state", "conn", "pool", "state", "task", "view")

    def __init__(self, state: _DropIn, pool: Pool, conn: Any, closed_state: dict[str, Any]) -> None:
        self.state = state
        self.pool = pool
        self.conn = conn
        self.closed_state = closed_state
        self.task: asyncio.Task[None] | None = None
        conn_class: Any = type(conn)
        view = object.__new__(_held_class(conn_class))
        # Borg-style: both objects read and write one attribute dict, so the
        # holder uses the very connection; a detach gives the view its own.
        view.__dict__ = vars(conn)
        view._mysqlpool_lease = self
        self.view = view
        state.out.add(self)

    def detach(self) -> None:
        """The holder's object stops reaching the connection: from now on it
        is a closed aiomysql connection (``closed`` is True, statements raise
        "Not connected", ``close()``/``ensure_closed()`` do nothing), whatever
        happens to the connection with its next holder."""
        view = self.view
        if view._mysqlpool_lease is self:
            view.__dict__ = {**vars(self.conn), **self.closed_state}
            view._mysqlpool_lease = None

    def start(self, exc: BaseException | None) -> None:
        """Give the connection back, in a task (``close()`` is synchronous)."""
        if self.task is not None:
            return
        self.state.out.discard(self)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop to return it on (closed from sync code): close it for
            # real so no socket leaks; the pool frees the slot when it closes.
            self.task = _NO_TASK
            self.conn.close()
            return
        task = loop.create_task(
            self.pool.release(self.conn, error=exc), name="mysqlpool drop-in return"
        )
        self.task = task
        self.state.tasks.add(task)
        task.add_done_callback(self.state.task_done)

    async def give_back(self, exc: BaseException | None) -> None:
        """Detach, give back, and wait until the pool has it."""
        self.detach()
        self.start(exc)
        task = self.task
        if task is not None and task is not _NO_TASK:
            # Shielded: a cancelled caller doesn't cut the return short.
            await asyncio.shield(task)


# The "task" of a lease whose connection was closed for want of a loop.
_NO_TASK: Any = object()


class _ProxyLease(_Lease):
    """A checkout on asyncmy: the holder gets a proxy instead of a view
    (asyncmy's connection has no attribute dict to share; see
    ``_dropin_asyncmy``), cut off from the connection at detach."""

    __slots__ = ("asyncmy_side",)

    def __init__(self, state: _DropIn, pool: Pool, conn: Any, asyncmy_side: Any) -> None:
        self.state = state
        self.pool = pool
        self.conn = conn
        self.closed_state = {}
        self.task = None
        self.view = asyncmy_side.AsyncmyHolder(conn, self)
        self.asyncmy_side = asyncmy_side
        state.out.add(self)

    def detach(self) -> None:
        self.asyncmy_side.detach(self.view, self)


@functools.cache
def _held_class(cls: Any) -> Any:
    """The class of the objects holders get for connections of class ``cls``:
    ``cls`` itself, except that ``close()`` and ``ensure_closed()`` give the
    connection back, and a holder's object that is garbage collected
    unclosed neither warns nor closes the pool's socket (aiomysql's
    ``__del__`` would)."""

    def close(self: Any) -> None:
        lease: _Lease | None = self._mysqlpool_lease
        if lease is None:
            cls.close(self)  # closed, or returned: a no-op, as in aiomysql
            return
        exc = sys.exc_info()[1]
        caller = sys._getframe(1).f_globals
        if caller is _AIOMYSQL_CONNECTION:
            # aiomysql gave up on it (lost, cancelled mid-reply): close the
            # socket now and free the slot. The holder's object stays on the
            # connection so aiomysql can finish its bookkeeping (the close
            # reason the pool reads); its own close() detaches it later.
            cls.close(self)
            lease.start(exc)
            return
        lease.detach()
        lease.start(exc)

    async def ensure_closed(self: Any) -> None:
        lease: _Lease | None = self._mysqlpool_lease
        if lease is None:
            await cls.ensure_closed(self)  # already closed: returns at once
            return
        await lease.give_back(sys.exc_info()[1])

    def __del__(self: Any) -> None:
        pass

    namespace = {
        "__slots__": ("_mysqlpool_lease",),
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "close": close,
        "ensure_closed": ensure_closed,
        "__del__": __del__,
    }
    return type(cls.__name__, (cls,), namespace)


def _lease_of(conn: Any) -> _Lease | None:
    lease = getattr(conn, "_mysqlpool_lease", None)
    return lease if isinstance(lease, _Lease) else None


# The mixin's base for the type checker: the driver's connect context
# manager that follows it in a subclass's MRO.
_DriverContext: Any = object


class _GivesBack(_DriverContext):  # type: ignore[misc]
    """What the patched ``connect()`` returns, mixed into the driver's own
    connect context manager: awaitable, and an async context manager whose
    exit gives the connection back (with the exception, so a lost
    connection is discarded). The subclasses hold ``_lease`` in a slot (a
    mixin's own slots would clash with the driver's class layout)."""

    _obj: Any
    _lease: _Lease | None

    def __init__(self, coro: Any) -> None:
        super().__init__(coro)
        self._lease = None

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
            # Not ours (connected after disable()): the driver's own exit.
            if exc_type is not None:
                conn.close()
            else:
                await conn.ensure_closed()


class _PooledConnect(_GivesBack, aiomysql.utils._ConnectionContextManager):  # type: ignore[misc]
    """``aiomysql.connect(...)``, patched: see :class:`_GivesBack`."""

    __slots__ = ("_lease",)


async def _check_out(
    state: _DropIn, original: Any, kwargs: dict[str, Any], asyncmy_side: Any = None
) -> Any:
    if not state.active:
        # disable() ran between the call and the await: behave as it says.
        return await original(**kwargs)
    if asyncmy_side is not None:
        kwargs = asyncmy_side.connect_keywords(kwargs)
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
    if state.ssl_allow_plaintext and kwargs.get("ssl"):
        kwargs["ssl_allow_plaintext"] = True
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
    driver = state.drivers.get(pool)
    if driver is None:
        driver = state.drivers[pool] = driver_for(params)
    conn = await pool.acquire()
    # As aiomysql.connect's: no last statement (insert_id() is 0).
    driver.forget_results(conn)
    if asyncmy_side is not None:
        return _ProxyLease(state, pool, conn, asyncmy_side).view
    return _Lease(state, pool, conn, driver.closed_state()).view


def _make_connect(
    state: _DropIn,
    original: Any,
    context: Any = _PooledConnect,
    asyncmy_side: Any = None,
) -> Any:
    signature = inspect.signature(original)
    driver = "aiomysql" if asyncmy_side is None else "asyncmy"

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        # Wrong keywords fail here, at the call, as with the driver.
        arguments = signature.bind(*args, **kwargs).arguments
        return context(_check_out(state, original, dict(arguments), asyncmy_side))

    connect.__doc__ = (
        f"{driver}.connect, patched by mysqlpool.enable(): checks a connection out "
        "of a pool; its close() gives it back.\n\n" + (original.__doc__ or "")
    )
    return connect


def _patch_asyncmy(state: _DropIn) -> None:
    """Patch ``asyncmy.connect`` onto pools on the asyncmy driver, if asyncmy
    is installed and new enough for them (else it is left alone)."""
    if importlib.util.find_spec("asyncmy") is None:
        return
    try:
        importlib.import_module("mysqlpool._driver_asyncmy")
    except DriverNotInstalled:
        return  # too old for the pools: its connect is left as it is
    import asyncmy
    import asyncmy.connection
    import asyncmy.contexts

    from . import _dropin_asyncmy

    class _AsyncmyPooledConnect(
        _GivesBack,
        asyncmy.contexts._ConnectionContextManager,  # type: ignore[type-arg]
    ):
        """``asyncmy.connect(...)``, patched: see :class:`_GivesBack`."""

        __slots__ = ("_lease",)

    keyword_defaults("asyncmy")  # ConnectParams reads the real signature, once
    original = asyncmy.connection.connect
    patched = _make_connect(state, original, _AsyncmyPooledConnect, _dropin_asyncmy)
    for target in ((asyncmy, "connect"), (asyncmy.connection, "connect")):
        module, name = target
        state.originals[target] = getattr(module, name)
        state.replacements[target] = patched
        setattr(module, name, patched)


def enable(
    pool_size: int = 5,
    recycle: float | Literal["auto"] | None = "auto",
    *,
    ssl_allow_plaintext: bool = False,
    **pool_options: Any,
) -> PoolManager:
    """Make ``aiomysql.connect`` (and ``asyncmy.connect``) check connections out of pools.

    From now on ``await aiomysql.connect(**kw)`` and ``async with
    aiomysql.connect(**kw) as conn`` take a connection from the pool for
    those parameters (one pool per identity, as :class:`PoolManager`
    keys them), and the connection's ``close()`` / ``ensure_closed()``
    give it back. With asyncmy installed, ``asyncmy.connect`` does the
    same on pools with ``driver="asyncmy"``. Meant for migrating an
    existing code base; new code should use :class:`Pool` directly.

    Args:
        pool_size: as :class:`Pool` takes it, for every pool.
        recycle: as :class:`Pool` takes it, for every pool.
        pool_options: the other options of :class:`Pool`, for every pool.
            ``reset_on_return`` defaults to ``"reset"`` here, so each
            ``connect()`` gets a session as fresh as a new connection's.
        ssl_allow_plaintext: a ``connect(ssl=...)`` to a server that offers
            no TLS is refused by default (``OperationalError`` 2026,
            "refusing a plaintext connection"), where plain aiomysql
            silently goes on in plaintext. True gets aiomysql's behaviour
            back: such connections are made in plaintext, and a warning is
            logged (now, and for each such connection).

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
    if not isinstance(ssl_allow_plaintext, bool):
        raise TypeError(
            "enable(): ssl_allow_plaintext must be a bool, "
            f"got {type(ssl_allow_plaintext).__name__}"
        )
    if _state is not None:
        if options != _state.options or ssl_allow_plaintext != _state.ssl_allow_plaintext:
            raise RuntimeError(
                "mysqlpool drop-in mode is already enabled with other options; "
                "call mysqlpool.disable() first"
            )
        return _state.manager
    state = _DropIn(options, PoolManager(**options))  # validates the options
    state.ssl_allow_plaintext = ssl_allow_plaintext
    if ssl_allow_plaintext:
        logger.warning(
            "mysqlpool drop-in: ssl_allow_plaintext=True: a connect(ssl=...) to a "
            "server without TLS goes on in plaintext, as plain aiomysql does"
        )
    # ConnectParams reads aiomysql.connect's signature once: read the real one.
    aiomysql_keyword_defaults()
    original = aiomysql.connection.connect
    patched = _make_connect(state, original)
    for module, name in _TARGETS:
        state.originals[(module, name)] = getattr(module, name)
        state.replacements[(module, name)] = patched
    for module, name in _TARGETS:
        setattr(module, name, patched)
    try:
        _patch_asyncmy(state)
    except BaseException:
        for (module, name), original in state.originals.items():
            setattr(module, name, original)  # all or nothing
        state.manager.close_nowait()
        raise
    _state = state
    return state.manager


def is_enabled() -> bool:
    """Whether drop-in mode is on."""
    return _state is not None


def disable() -> _Disabled:
    """Undo :func:`enable`: restore aiomysql (and asyncmy) and close the pools.

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
        if getattr(module, name, None) is state.replacements[(module, name)]:
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
        # Those still out were closed by the pools: their slots come back now
        # (their holders' objects read as closed; a close() of theirs is a no-op).
        for lease in list(state.out):
            lease.start(None)
        while state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()
