"""The driver seam: everything the pool asks of a database driver.

A pool never touches a driver's connection itself: it asks its
:class:`Driver`, chosen once when the pool is made. Each driver has one
implementation of this protocol (``_driver_aiomysql`` for aiomysql,
``_driver_asyncmy`` for asyncmy), which is the only module that may read
that driver's private attributes, so a driver upgrade has one module to check.

What a driver must answer without a round trip (``probe`` of an idle
connection at checkout and of every connection at its return,
``returned_state`` at the return, ``cancelled_mid_reply``) is asked on
every checkout and return; what needs the server (``ping``,
``rollback``, ``reset_session``, ``kill_query``) is awaited by the pool
outside its state changes.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ._driver_names import import_driver_package
from ._params import ConnectParams

__all__ = [
    "CLEAN",
    "CLOSED",
    "DEAD",
    "IMPLEMENTATIONS",
    "INTERRUPTIONS",
    "NEEDS_ROLLBACK",
    "UNREAD_RESULT",
    "Driver",
    "InitCallback",
    "driver_for",
    "unknown_after",
]

#: ``init=`` callback: run on every new connection before it is handed out.
InitCallback = Callable[[Any], Awaitable[None]]

#: A holder that stopped with one of these may have left a reply half read.
INTERRUPTIONS = (asyncio.CancelledError, asyncio.TimeoutError, TimeoutError)

#: What :meth:`Driver.probe` says of a connection that is closed, or that the
#: server has already hung up on.
DEAD: Any = object()

# What Driver.returned_state says of a connection coming back.
#: Open, nothing left to read, no transaction: reusable as it is.
CLEAN = "clean"
#: A transaction may be open: reusable after a ROLLBACK (or a reset).
NEEDS_ROLLBACK = "needs rollback"
#: An unbuffered result is still streaming: the protocol is mid-reply.
UNREAD_RESULT = "unread result"
#: Closed, or the server has hung up.
CLOSED = "connection closed"


class Driver(Protocol):
    """One database driver, as the pool sees it."""

    #: The driver's name, as ``mysql+<name>://`` spells it.
    name: str
    #: The base class of the errors the driver raises for server and
    #: connection failures (PyMySQL's ``MySQLError`` for aiomysql).
    Error: type[Exception]
    #: The driver's ``OperationalError`` (the server or the network failed).
    OperationalError: type[Exception]

    async def connect(self, params: ConnectParams, init: InitCallback | None) -> Any:
        """Open and log in one connection, then run ``init`` on it.

        Refuses a plaintext connection when TLS was configured, and the
        ``mysql_clear_password`` plugin without TLS. On any failure or
        cancellation the socket is closed before the exception propagates.
        """

    def probe(self, conn: Any) -> object:
        """The liveness test, without a round trip: :data:`DEAD` when the
        connection is closed or the server already hung up (an idle
        connection has nothing to read, so anything the server sent means it
        is done with it); else a marker that changes whenever a statement
        runs, for :meth:`returned_state`. Asked at every checkout."""

    def is_dead(self, conn: Any) -> bool:
        """``probe(conn) is DEAD``."""

    def returned_state(self, conn: Any, probed: object, marker: object) -> str:
        """The state of a connection coming back, given what ``probe`` says
        of it now (``probed``) and said when it was checked out (``marker``):
        :data:`CLOSED`, :data:`UNREAD_RESULT`, :data:`NEEDS_ROLLBACK` (the
        server says a transaction is open, or autocommit is off and a
        statement ran since the checkout: a plain SELECT opens a snapshot
        without saying so) or :data:`CLEAN`. Asked at every return."""

    def cancelled_mid_reply(self, conn: Any) -> bool:
        """The driver closed the connection because its holder was cancelled
        while waiting for a reply: the server may still be running the statement."""

    def thread_id(self, conn: Any) -> int:
        """The server's id for the connection's session (``KILL`` takes it)."""

    def is_connection_lost(self, exc: BaseException | None) -> bool:
        """``exc`` says the connection it came from can't be reused (2006, 2013, 4031...)."""

    def error_code(self, exc: BaseException | None) -> int | None:
        """The server or client error number ``exc`` carries, if it is a driver error."""

    def raised_mid_reply(self, exc: BaseException) -> bool:
        """``exc`` came out of the driver while it was reading a reply, and is
        not the server's error reply (which ends a reply): the rest of the
        reply may still be on its way (aiomysql's ``RuntimeError`` for a
        refused ``LOAD DATA LOCAL``, a converter failing on a row, a client
        error), so the protocol state is unknown."""

    async def ping(self, conn: Any) -> None:
        """COM_PING, never reconnecting: a dead connection raises. What the
        holder reads of its last statement (``insert_id()``...) is kept."""

    def forget_results(self, conn: Any) -> None:
        """Make what the connection says of its last statement
        (``insert_id()``, ``affected_rows()``) a new connection's."""

    def closed_state(self) -> dict[str, Any]:
        """The instance attributes that make a connection object read as
        closed, as the driver's own ``close()`` leaves them (``closed`` is
        True, a statement raises, ``close()`` does nothing). The drop-in
        detaches a holder's object with them; it shares the connection's
        instance dict, so this fits a driver whose connection keeps its
        state there (aiomysql; asyncmy keeps its in C slots and would need a
        proxy instead)."""

    async def rollback(self, conn: Any) -> None:
        """ROLLBACK; the last statement's results are then a new connection's."""

    async def reset_connection(self, conn: Any) -> None:
        """COM_RESET_CONNECTION alone (the server's fresh session)."""

    async def reset_session(
        self, conn: Any, params: ConnectParams, init: InitCallback | None
    ) -> None:
        """COM_RESET_CONNECTION, then the configured session applied again
        (database, character set, autocommit, sql_mode, init_command, ``init``)."""

    async def kill_query(self, params: ConnectParams, thread_id: int, timeout: float) -> None:
        """``KILL QUERY thread_id`` over a short-lived side connection, each
        step bounded by ``timeout`` seconds."""

    async def read_wait_timeout(self, conn: Any) -> float:
        """The session's ``wait_timeout``, in seconds, leaving no trace in
        what the holder reads of its last statement."""

    async def show_values(self, conn: Any, statement: str) -> dict[str, str]:
        """A ``SHOW VARIABLES``/``SHOW STATUS`` result as ``{lowercase name:
        value}``, leaving no trace in what the holder reads of its last statement."""

    def close(self, conn: Any, *, graceful: bool) -> None:
        """Close now, without awaiting; ``graceful`` says goodbye (COM_QUIT) first."""


#: Each driver's implementation of the seam, by name: a module exposing
#: ``DRIVER``, imported the first time a pool asks for it (so a driver that
#: isn't used is never imported).
IMPLEMENTATIONS = {
    "aiomysql": "mysqlpool._driver_aiomysql",
    "asyncmy": "mysqlpool._driver_asyncmy",
}


def driver_for(params: ConnectParams) -> Driver:
    """The driver that opens connections for ``params`` (``params.driver``).

    Raises:
        DriverNotInstalled: that driver is not installed (the message says
            what to install).
    """
    name = params.driver
    import_driver_package(name)  # a missing driver: one line saying what to install
    module = importlib.import_module(IMPLEMENTATIONS[name])
    driver: Driver = module.DRIVER
    return driver


def unknown_after(driver: Driver, error: BaseException) -> str | None:
    """Why ``error``, raised through a holder's use of a connection, leaves
    its protocol state unknown, or None when it doesn't: a lost connection,
    an interruption (cancellation, timeout) that may have left a reply half
    read, or an error the driver raised while reading a reply. An SQL error
    the server replied with, or an error of the holder's own code, leaves it
    known: the connection is reset or rolled back and reused."""
    if driver.is_connection_lost(error):
        return f"connection lost ({type(error).__name__})"
    if isinstance(error, INTERRUPTIONS) or not isinstance(error, Exception):
        return f"holder interrupted ({type(error).__name__})"
    if driver.raised_mid_reply(error):
        return f"raised mid-reply ({type(error).__name__})"
    return None
