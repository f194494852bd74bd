"""The driver seam: everything the pool asks of a database driver.

A pool never touches a driver's connection itself: it asks its
:class:`Driver`, chosen once when the pool is made. Each driver has one
implementation of this protocol (``_driver_aiomysql`` for aiomysql), which
is the only module that may read that driver's private attributes, so a
driver upgrade has one module to check.

What a driver must answer without a round trip (``is_dead``,
``result_marker``, ``needs_rollback``, ``has_unread_result``,
``cancelled_mid_reply``) is asked on every checkout and return; what needs
the server (``ping``, ``rollback``, ``reset_session``, ``kill_query``) is
awaited by the pool outside its state changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ._dsn import ConnectParams

__all__ = ["INTERRUPTIONS", "Driver", "InitCallback", "driver_for", "unknown_state_reason"]

#: ``init=`` callback: run on every new connection before it is handed out.
InitCallback = Callable[[Any], Awaitable[None]]

#: A holder that stopped with one of these may have left a reply half read.
INTERRUPTIONS = (asyncio.CancelledError, asyncio.TimeoutError, TimeoutError)


class Driver(Protocol):
    """One database driver, as the pool sees it."""

    #: The driver's name, as ``mysql+<name>://`` spells it.
    name: str
    #: The base class of the errors the driver raises for server and
    #: connection failures (PyMySQL's ``MySQLError`` for aiomysql).
    Error: type[Exception]

    async def connect(self, params: ConnectParams, init: InitCallback | None) -> Any:
        """Open and log in one connection, then run ``init`` on it.

        Refuses a plaintext connection when TLS was configured, and the
        ``mysql_clear_password`` plugin without TLS. On any failure or
        cancellation the socket is closed before the exception propagates.
        """

    def is_dead(self, conn: Any) -> bool:
        """The connection is closed or the server already hung up (no round trip)."""

    def result_marker(self, conn: Any) -> object:
        """A token that changes whenever a statement runs (see ``needs_rollback``)."""

    def needs_rollback(self, conn: Any, marker: object) -> bool:
        """A transaction may be open: the server says so, or autocommit is off
        and a statement ran since ``marker`` was taken."""

    def has_unread_result(self, conn: Any) -> bool:
        """An unbuffered result is still streaming: the protocol is mid-reply."""

    def cancelled_mid_reply(self, conn: Any) -> bool:
        """The driver closed the connection because its holder was cancelled
        while waiting for a reply: the server may still be running the statement."""

    def thread_id(self, conn: Any) -> int:
        """The server's id for the connection's session (``KILL`` takes it)."""

    def is_connection_lost(self, exc: BaseException | None) -> bool:
        """``exc`` says the connection it came from can't be reused (2006, 2013, 4031...)."""

    def error_code(self, exc: BaseException | None) -> int | None:
        """The server or client error number ``exc`` carries, if it is a driver error."""

    async def ping(self, conn: Any) -> None:
        """COM_PING, never reconnecting: a dead connection raises."""

    async def rollback(self, conn: Any) -> None:
        """ROLLBACK."""

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
        """The session's ``wait_timeout``, in seconds."""

    async def show_values(self, conn: Any, statement: str) -> dict[str, str]:
        """A ``SHOW VARIABLES``/``SHOW STATUS`` result as ``{lowercase name: value}``."""

    def close(self, conn: Any, *, graceful: bool) -> None:
        """Close now, without awaiting; ``graceful`` says goodbye (COM_QUIT) first."""


def driver_for(params: ConnectParams) -> Driver:
    """The driver that opens connections for ``params`` (aiomysql, for now)."""
    from ._driver_aiomysql import AIOMYSQL

    return AIOMYSQL


def unknown_state_reason(driver: Driver, conn: Any, error: BaseException | None) -> str | None:
    """Why a returned connection's protocol state can't be trusted, or None.

    ``error`` is what ended its holder's use, if anything: a lost connection,
    or an interruption (cancellation, timeout) that may have left a reply
    half read.
    """
    if driver.is_dead(conn):
        return "connection closed"
    if error is not None:
        if driver.is_connection_lost(error):
            return f"connection lost ({type(error).__name__})"
        if isinstance(error, INTERRUPTIONS) or not isinstance(error, Exception):
            return f"holder interrupted ({type(error).__name__})"
    if driver.has_unread_result(conn):
        return "unread result"
    return None
