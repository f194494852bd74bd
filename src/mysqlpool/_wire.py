"""What every driver seam shares about the MySQL protocol: command bytes,
status flags, the error codes that mean a connection is lost, and how a
connection's state at its return is judged from them.

Both drivers speak the same protocol, so this is written once; each
``_driver_<name>`` module only says where its connection keeps these values.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._driver import CLEAN, NEEDS_ROLLBACK

__all__ = [
    "AUTOCOMMIT_IDLE",
    "CLEARTEXT_REFUSED",
    "COM_RESET_CONNECTION",
    "CONNECTION_LOSS_CODES",
    "CR_AUTH_PLUGIN_ERROR",
    "CR_SSL_CONNECTION_ERROR",
    "DATABASE_SELECTED",
    "LOSS_MESSAGES",
    "NO_RESULTS",
    "PLAINTEXT_REFUSED",
    "QUIT_PACKET",
    "TRANSACTION_STATUS",
    "SharedCommands",
    "is_loss",
    "last_results",
    "raised_while_reading",
    "restore_results",
    "rows_unseen",
    "state_of_status",
]

# Error codes after which the socket can't be trusted: the server is gone
# (2006, 2013, 2055), it closed the session (4031 idle timeout, 1927
# connection killed, 1053 shutdown), or client and server disagree on where
# the protocol is (2014 commands out of sync, 2045 a stray packet).
CONNECTION_LOSS_CODES = frozenset({1053, 1927, 2006, 2013, 2014, 2045, 2055, 4031})

# The drivers raise these with a message instead of a numeric code (or with
# code 0): the socket is closed, the reply's sequence numbers went wrong, or
# the driver closed the connection because a read was cancelled.
LOSS_MESSAGES = (
    "Not connected",
    "Already closed",
    "Packet sequence number wrong",
    "Cancelled during execution",
)

CR_SSL_CONNECTION_ERROR = 2026  # the client error code for a failed TLS set-up
CR_AUTH_PLUGIN_ERROR = 2059  # the client error code for an authentication plugin refused
CLEARTEXT_REFUSED = (
    "the server asked for the password in clear (mysql_clear_password) on a "
    "connection without TLS: refused; configure TLS (ssl_ca=...) for this account"
)
PLAINTEXT_REFUSED = (
    "TLS was configured but the server did not negotiate it; refusing a plaintext connection"
)
#: A reset can't make such a connection as new: no statement unselects a database.
DATABASE_SELECTED = "a database was selected on a connection opened without one"

COM_RESET_CONNECTION = 0x1F
_COM_QUIT = 0x01
#: A whole COM_QUIT packet: 3-byte length 1, sequence 0, the command byte.
QUIT_PACKET = struct.pack("<I", 1) + bytes([_COM_QUIT])

_SERVER_STATUS_IN_TRANS = 0x0001
_SERVER_STATUS_AUTOCOMMIT = 0x0002
_SERVER_STATUS_IN_TRANS_READONLY = 0x2000
_IN_TRANSACTION = _SERVER_STATUS_IN_TRANS | _SERVER_STATUS_IN_TRANS_READONLY
#: ``status & TRANSACTION_STATUS == AUTOCOMMIT_IDLE``: autocommit on, no
#: transaction open, the common case the seams test inline (no call).
TRANSACTION_STATUS = _IN_TRANSACTION | _SERVER_STATUS_AUTOCOMMIT
AUTOCOMMIT_IDLE = _SERVER_STATUS_AUTOCOMMIT


def is_loss(args: tuple[object, ...]) -> bool:
    """A driver error with these ``args`` (``(code, message)`` or
    ``(message,)``) says its connection can't be reused."""
    if not args:
        return False
    code = args[0]
    if isinstance(code, int) and code != 0:
        # A server error's message may quote the statement: only its code counts.
        return code in CONNECTION_LOSS_CODES
    text = " ".join(str(arg) for arg in args)
    return any(message in text for message in LOSS_MESSAGES)


def state_of_status(server_status: int, statement_ran: bool) -> str:
    """:data:`CLEAN` or :data:`NEEDS_ROLLBACK` for an open connection in a
    known protocol state, from the server's last status flags and whether a
    statement ran since the checkout."""
    if server_status & TRANSACTION_STATUS == AUTOCOMMIT_IDLE:
        return CLEAN  # autocommit on, no transaction open
    if server_status & _IN_TRANSACTION or statement_ran:
        # Autocommit off: a plain SELECT opened a snapshot, unflagged.
        return NEEDS_ROLLBACK
    return CLEAN


# Client error codes (CR_*): raised by the client library, not sent by the server.
_CLIENT_ERRORS = range(2000, 3000)


def raised_while_reading(
    code: int | None, exc: BaseException, reads_replies: Callable[[FrameType], bool]
) -> bool:
    """Whether ``exc`` (carrying error ``code``, if any) came out of the
    driver while it was reading a reply, and is not the server's own error
    packet (which ends a reply): ``reads_replies(frame)`` says whether a
    traceback frame is the driver's reply-reading code."""
    if code is not None and code not in _CLIENT_ERRORS:
        return False  # the server's error packet: the reply ended with it
    tb = exc.__traceback__
    while tb is not None:
        if reads_replies(tb.tb_frame):
            return True
        tb = tb.tb_next
    return False


# Both drivers' connections keep the last statement's results (insert_id(),
# affected_rows(), the OK packet's message) in these two attributes.
#: Their values on a new connection: no result, 0 rows.
NO_RESULTS: tuple[Any, int] = (None, 0)


def last_results(conn: Any) -> tuple[Any, int]:
    """What ``conn`` says of its last statement, for :func:`restore_results`."""
    return conn._result, conn._affected_rows


def restore_results(conn: Any, results: tuple[Any, int]) -> None:
    """Make ``conn`` say ``results`` of its last statement again."""
    conn._result, conn._affected_rows = results


async def rows_unseen(conn: Any, cursor_class: Any, statement: str) -> Any:
    """The rows of a statement the pool runs for itself, through a plain
    ``cursor_class`` whatever cursor the caller configured (DictCursor...),
    leaving the connection's last results as they were: the holder must not
    see it."""
    last = last_results(conn)
    async with conn.cursor(cursor_class) as cur:
        await cur.execute(statement)
        rows = await cur.fetchall()
    restore_results(conn, last)
    return rows


class SharedCommands:
    """The seam's methods that both drivers' connections carry out alike
    (their connections share these method and attribute names): a driver
    class inherits them and writes only what differs."""

    __slots__ = ()

    async def ping(self, conn: Any) -> None:
        last = last_results(conn)
        await conn.ping(reconnect=False)
        restore_results(conn, last)

    async def rollback(self, conn: Any) -> None:
        await conn.rollback()
        restore_results(conn, NO_RESULTS)  # as a new connection's

    def forget_results(self, conn: Any) -> None:
        restore_results(conn, NO_RESULTS)

    async def reset_connection(self, conn: Any) -> None:
        await conn._execute_command(COM_RESET_CONNECTION, b"")
        await conn._read_ok_packet()
