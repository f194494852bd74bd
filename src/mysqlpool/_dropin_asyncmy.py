"""Drop-in mode's side for ``asyncmy.connect``: the holder's proxy, and
asyncmy's connect keywords as the pools take them.

Imported only when asyncmy is installed and new enough for the pools
(``mysqlpool._driver_asyncmy`` imports).

Why a proxy
-----------
For aiomysql each holder gets an instance of a subclass of the connection
class sharing the pooled connection's attribute dict, so it *is* the
connection, and a detach gives it a dict of its own. asyncmy's connection
keeps its state in C slots (Cython), which an object can't share: the holder
gets an :class:`AsyncmyHolder` instead, a small object forwarding every
attribute to the pooled connection while it is checked out, and to nothing
once given back:

* ``close()`` / ``ensure_closed()`` / leaving ``async with conn:`` give the
  connection back (with the exception being handled, so the pool decides
  from it), and detach the proxy first, at once;
* a detached proxy reads as a closed asyncmy connection: ``connected`` is
  False, ``close()`` and ``ensure_closed()`` do nothing, and any other use
  raises asyncmy's ``InterfaceError(0, "Not connected")`` (but the DB-API
  error classes, ``conn.Error``...); it never reaches the connection's next
  holder;
* ``isinstance(holder, asyncmy.connection.Connection)`` holds (the proxy's
  ``__class__`` says so, as ``unittest.mock`` does), ``type(holder)`` is not
  asyncmy's class;
* what the connection hands out holds the *real* connection: a cursor made
  before the return still reaches it afterwards (it belongs to the next
  holder then, or is closed). Code that keeps cursors past ``close()`` is
  wrong with plain asyncmy too (it gets "Not connected"), but here it is
  not told so.

asyncmy closes a connection itself when it loses it or is cancelled
mid-read. Those closes happen on the real connection (asyncmy's compiled
code calls its own ``close()``, which the proxy doesn't stand in for), so
the socket is closed at once and the pool, finding it closed at the
holder's return (``connected`` false: no transport), discards it. The slot
comes back at that return, not earlier: a holder that never closes keeps it.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Protocol

import asyncmy.connection
import asyncmy.errors

__all__ = ["AsyncmyHolder", "Lease", "connect_keywords", "detach"]

_CONNECTION = asyncmy.connection.Connection

# The connect_timeout asyncmy.connect uses when none is given (ConnectParams'
# own default is "no limit of the driver's").
_ASYNCMY_CONNECT_TIMEOUT = 10


class Lease(Protocol):
    """What gives a holder's connection back (the drop-in module's checkout)."""

    def detach(self) -> None:
        """Cut the holder's proxy off the connection."""

    def start(self, exc: BaseException | None) -> None:
        """Start giving the connection back (in a task)."""

    async def give_back(self, exc: BaseException | None) -> None:
        """Detach, give back, and wait until the pool has it."""


class AsyncmyHolder:
    """What a drop-in ``asyncmy.connect()`` hands its caller: the pooled
    connection, through a proxy cut off at its return (see the module's
    docstring).

    ``_mysqlpool_lease`` is the attribute every drop-in holder object has
    (the aiomysql ones too): its checkout while attached, else None.
    """

    # Names no asyncmy attribute has: everything else is forwarded.
    __slots__ = ("_mysqlpool_conn", "_mysqlpool_lease")

    def __init__(self, conn: Any, lease: Lease) -> None:
        object.__setattr__(self, "_mysqlpool_conn", conn)
        object.__setattr__(self, "_mysqlpool_lease", lease)

    # isinstance(holder, asyncmy.connection.Connection) holds, as for the
    # objects aiomysql's drop-in hands out.
    @property  # type: ignore[misc]
    def __class__(self) -> type[Any]:
        return _CONNECTION

    @property
    def connected(self) -> bool:
        """Whether the connection is open: False once given back."""
        conn = self._mysqlpool_conn
        return conn is not None and bool(conn.connected)

    def close(self) -> None:
        """Give the connection back (the return runs in a task); a no-op once
        given back."""
        lease = self._mysqlpool_lease
        if lease is None:
            return
        exc = sys.exc_info()[1]
        lease.detach()
        lease.start(exc)

    async def ensure_closed(self) -> int:
        """Give the connection back and wait until the pool has it.

        Returns the last statement's insert id, as asyncmy's does (0 once
        given back).
        """
        lease = self._mysqlpool_lease
        if lease is None:
            return 0
        insert_id = int(self._mysqlpool_conn.insert_id())
        await lease.give_back(sys.exc_info()[1])
        return insert_id

    async def __aenter__(self) -> AsyncmyHolder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease = self._mysqlpool_lease
        if lease is not None:
            await lease.give_back(exc)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_mysqlpool_"):
            raise AttributeError(name)  # a slot not set yet: never forwarded
        conn = self._mysqlpool_conn
        if conn is None:
            raise asyncmy.errors.InterfaceError(0, "Not connected")
        return getattr(conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        conn = self._mysqlpool_conn
        if conn is None:
            raise asyncmy.errors.InterfaceError(0, "Not connected")
        setattr(conn, name, value)

    def __repr__(self) -> str:
        conn = self._mysqlpool_conn
        if conn is None:
            return "<mysqlpool drop-in asyncmy connection, given back>"
        return f"<mysqlpool drop-in holder of {conn!r}>"


def _forwarded(name: str) -> property:
    def read(self: AsyncmyHolder) -> Any:
        conn = self._mysqlpool_conn
        if conn is None:
            raise asyncmy.errors.InterfaceError(0, "Not connected")
        return getattr(conn, name)

    return property(read, doc=f"The connection's ``{name}`` (while checked out).")


# The public names of asyncmy's connection class (cursor, query, commit...)
# are the proxy's own properties: found at once, where a name left to
# __getattr__ is found after a failed lookup, which costs more than what a
# query on the proxy costs on top of the connection (docs/dropin.md).
# Attributes of the instance (host, port...) go through __getattr__. The
# DB-API error classes (conn.Error...) are constants: the proxy has them even
# once given back, so ``except conn.Error:`` works on a stale reference too.
for _name in dir(_CONNECTION):
    if _name.startswith("_") or _name in vars(AsyncmyHolder):
        continue
    _value = getattr(_CONNECTION, _name)
    if isinstance(_value, type) and issubclass(_value, Exception):
        setattr(AsyncmyHolder, _name, _value)
    else:
        setattr(AsyncmyHolder, _name, _forwarded(_name))
del _name, _value


def detach(holder: AsyncmyHolder, lease: Lease) -> None:
    """From now on ``holder`` is a closed connection. Only its own checkout's
    detach counts: a proxy is detached once."""
    if holder._mysqlpool_lease is lease:
        object.__setattr__(holder, "_mysqlpool_conn", None)
        object.__setattr__(holder, "_mysqlpool_lease", None)


def connect_keywords(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``asyncmy.connect``'s keywords (those the caller passed) as
    ConnectParams takes them, on the asyncmy driver.

    Raises:
        TypeError: ``sock=`` (one socket can't make a pool's connections).
    """
    kwargs = dict(kwargs)
    if kwargs.pop("sock", None) is not None:
        raise TypeError(
            "mysqlpool drop-in: asyncmy.connect(sock=...) can't be pooled (a pool "
            "opens its own connections); pass host/port or unix_socket instead"
        )
    database = kwargs.pop("database", None)
    if database is not None:
        kwargs["db"] = database  # asyncmy's db is the deprecated alias; database wins
    if kwargs.get("host", "") is None:
        del kwargs["host"]  # asyncmy's None: localhost, as ConnectParams' default
    if kwargs.get("port") == 0:
        del kwargs["port"]  # asyncmy's "the default port"
    kwargs.setdefault("connect_timeout", _ASYNCMY_CONNECT_TIMEOUT)
    kwargs["driver"] = "asyncmy"
    return kwargs
