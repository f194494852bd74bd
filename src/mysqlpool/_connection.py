"""What the pool does to one aiomysql connection: open, probe, ping, reset, close.

aiomysql exposes neither COM_RESET_CONNECTION, nor a ping that refuses to
reconnect silently, nor a way to see that the server has already hung up on
an idle socket; the few private attributes these need are read here and
nowhere else, so a driver upgrade has one module to check.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiomysql
import pymysql
from aiomysql.connection import DEFAULT_CHARSET
from pymysql.charset import charset_by_name

from ._params import ConnectParams

__all__ = [
    "CONNECTION_LOSS_CODES",
    "UNFIT",
    "InitCallback",
    "PooledConnection",
    "cancelled_mid_reply",
    "checkout_marker",
    "clean_after_use",
    "close_connection",
    "has_unread_result",
    "is_connection_lost",
    "needs_rollback",
    "open_connection",
    "ping",
    "read_wait_timeout",
    "reset_session",
    "result_marker",
    "socket_is_dead",
]

#: ``init=`` callback: run on every new connection before it is handed out.
InitCallback = Callable[[Any], Awaitable[None]]

# Error codes after which the socket can't be trusted: the server is gone
# (2006, 2013, 2055), it closed the session (4031 idle timeout, 1927
# connection killed, 1053 shutdown), or client and server disagree on where
# the protocol is (2014 commands out of sync, 2045 a stray packet).
CONNECTION_LOSS_CODES = frozenset({1053, 1927, 2006, 2013, 2014, 2045, 2055, 4031})

# PyMySQL raises these with a message instead of a numeric code.
_LOSS_MESSAGES = ("Not connected", "Packet sequence number wrong", "Cancelled during execution")

_CR_SSL_CONNECTION_ERROR = 2026  # the client error code for a failed TLS set-up
_CR_AUTH_PLUGIN_ERROR = 2059  # the client error code for an authentication plugin refused
_CLEARTEXT_REFUSED = (
    "the server asked for the password in clear (mysql_clear_password) on a "
    "connection without TLS: refused; configure TLS (ssl_ca=...) for this account"
)
CLIENT_SSL = 0x800  # capability flag: the server can switch to TLS
_COM_QUIT = 0x01
_COM_RESET_CONNECTION = 0x1F
# A whole COM_QUIT packet: 3-byte length 1, sequence 0, the command byte.
_QUIT_PACKET = struct.pack("<I", 1) + bytes([_COM_QUIT])

_SERVER_STATUS_IN_TRANS = 0x0001
_SERVER_STATUS_AUTOCOMMIT = 0x0002
_SERVER_STATUS_IN_TRANS_READONLY = 0x2000
_IN_TRANSACTION = _SERVER_STATUS_IN_TRANS | _SERVER_STATUS_IN_TRANS_READONLY
# ``status & _TRANSACTION_STATUS == _SERVER_STATUS_AUTOCOMMIT``: autocommit on
# and no transaction open.
_TRANSACTION_STATUS = _IN_TRANSACTION | _SERVER_STATUS_AUTOCOMMIT


class PooledConnection(aiomysql.Connection):  # type: ignore[misc]
    """aiomysql's connection, refusing to send a password in clear over the network.

    A server may ask for the ``mysql_clear_password`` plugin (PAM, LDAP);
    aiomysql then sends the password as is, even without TLS. Here that is
    refused unless the connection is encrypted or a local unix socket.
    """

    def _clear_password_refused(self) -> bool:
        encrypted = self._writer is not None and self._writer.get_extra_info("ssl_object")
        return not encrypted and not self._unix_socket

    async def _request_authentication(self) -> None:
        announced = self._client_auth_plugin or self._server_auth_plugin
        will_encrypt = self._ssl_context is not None and self.server_capabilities & CLIENT_SSL
        if announced == "mysql_clear_password" and not will_encrypt and not self._unix_socket:
            raise pymysql.err.OperationalError(_CR_AUTH_PLUGIN_ERROR, _CLEARTEXT_REFUSED)
        await super()._request_authentication()

    async def _process_auth(self, plugin_name: bytes, auth_packet: Any) -> Any:
        if plugin_name == b"mysql_clear_password" and self._clear_password_refused():
            raise pymysql.err.OperationalError(_CR_AUTH_PLUGIN_ERROR, _CLEARTEXT_REFUSED)
        return await super()._process_auth(plugin_name, auth_packet)


async def open_connection(params: ConnectParams, init: InitCallback | None) -> Any:
    """Open and log in one connection, then run ``init`` on it.

    This is the only place connections are made. A failure or a cancellation
    at any step closes the socket before the exception propagates: aiomysql
    itself only cleans up after ``Exception``, so a cancelled handshake would
    otherwise leave a socket open.
    """
    conn = PooledConnection(**params.connect_kwargs())
    try:
        await conn._connect()
        if params.ssl is not None and conn._writer.get_extra_info("ssl_object") is None:
            # aiomysql quietly goes on in plaintext when the server offers no
            # TLS; a caller who configured TLS must not send data in clear.
            raise pymysql.err.OperationalError(
                _CR_SSL_CONNECTION_ERROR,
                "TLS was configured but the server did not negotiate it; "
                "refusing a plaintext connection",
            )
        if init is not None:
            await init(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def socket_is_dead(conn: Any) -> bool:
    """True when the connection is closed, or the server has already hung up.

    Costs no round trip: an idle connection has nothing to read, so any
    buffered byte (an error packet such as 4031 sent before the server closed
    the session) or an EOF means the server is done with it.
    """
    if conn._writer is None:
        return True
    # A transport that lost its connection feeds EOF or an exception to the
    # reader, so the reader alone tells.
    reader = conn._reader
    return bool(reader._eof or reader._buffer or reader._exception is not None)


def clean_after_use(conn: Any) -> bool:
    """The common case of a return, in one call: open, nothing from the server
    waiting to be read, no unbuffered result still streaming, autocommit on
    and no transaction open. Such a connection can be reused as it is (there
    is nothing to roll back); False means "look closer", not "unusable".

    The tests of ``socket_is_dead``, ``has_unread_result`` and
    ``needs_rollback``, in one call because the pool asks on every return
    (keep them in step).
    """
    if conn._writer is None:
        return False
    reader = conn._reader
    if reader._eof or reader._buffer or reader._exception is not None:
        return False
    result = conn._result
    if result is not None and result.unbuffered_active:
        return False
    status = conn.server_status
    return status is not None and status & _TRANSACTION_STATUS == _SERVER_STATUS_AUTOCOMMIT


def is_connection_lost(exc: BaseException | None) -> bool:
    """True when ``exc`` says the connection it came from can't be reused."""
    if not isinstance(exc, pymysql.err.Error) or not exc.args:
        return False
    code = exc.args[0]
    if isinstance(code, int):
        return code in CONNECTION_LOSS_CODES
    text = str(code)
    return any(message in text for message in _LOSS_MESSAGES)


def needs_rollback(conn: Any, result_at_checkout: object) -> bool:
    """True when a transaction may be open on ``conn``.

    The server flags an explicit transaction; with autocommit off a plain
    SELECT also opens a snapshot without setting that flag, so any statement
    since checkout (aiomysql replaces ``_result`` on each one) counts too.
    """
    status = conn.server_status or 0
    if status & _IN_TRANSACTION:
        return True
    return not status & _SERVER_STATUS_AUTOCOMMIT and conn._result is not result_at_checkout


def has_unread_result(conn: Any) -> bool:
    """True when an unbuffered result is still streaming: the protocol is mid-reply."""
    result = conn._result
    return result is not None and bool(result.unbuffered_active)


def cancelled_mid_reply(conn: Any) -> bool:
    """True when aiomysql closed ``conn`` because its holder was cancelled
    while waiting for a reply: the server may still be running the statement."""
    return conn._writer is None and conn._close_reason == "Cancelled during execution"


def result_marker(conn: Any) -> object:
    """What ``needs_rollback`` compares against to tell that a statement ran."""
    return conn._result


#: What ``checkout_marker`` returns for a connection not fit to hand out.
UNFIT: Any = object()


def checkout_marker(conn: Any) -> object:
    """The checkout of an idle connection in one call: ``UNFIT`` when
    ``socket_is_dead``, else ``result_marker`` (keep them in step).

    The pool asks on every checkout that needs no I/O.
    """
    if conn._writer is None:
        return UNFIT
    reader = conn._reader
    if reader._eof or reader._buffer or reader._exception is not None:
        return UNFIT
    return conn._result


async def ping(conn: Any) -> None:
    """COM_PING without aiomysql's silent reconnect: a dead connection raises."""
    await conn.ping(reconnect=False)


async def reset_session(conn: Any, params: ConnectParams, init: InitCallback | None) -> None:
    """COM_RESET_CONNECTION, then re-apply what the pool configured.

    The reset rolls back, drops temporary tables, releases locks, closes
    prepared statements and returns every session variable to its global
    value, but keeps the current database: so the configured database,
    character set, sql_mode, autocommit, ``init_command`` and ``init`` are
    applied again.
    """
    await conn._execute_command(_COM_RESET_CONNECTION, b"")
    await conn._read_ok_packet()
    if params.db is not None:
        await conn.select_db(params.db)
    # The configured values, not the driver's current ones: the holder may
    # have changed those through conn.set_charset() or conn.autocommit().
    charset = params.charset or DEFAULT_CHARSET
    assignments = [f"NAMES {conn.escape(charset)}", f"autocommit={int(params.autocommit)}"]
    if params.sql_mode is not None:
        assignments.append(f"sql_mode={conn.escape(params.sql_mode)}")
    await conn.query("SET " + ", ".join(assignments))
    conn._charset = charset
    conn._encoding = charset_by_name(charset).encoding
    conn.autocommit_mode = params.autocommit
    if params.init_command is not None:
        await conn.query(params.init_command)
    if init is not None:
        await init(conn)


async def read_wait_timeout(conn: Any) -> float:
    """The session's ``wait_timeout``: how long the server lets it sit idle."""
    # A plain cursor whatever cursorclass the caller configured (DictCursor...).
    async with conn.cursor(aiomysql.Cursor) as cur:
        await cur.execute("SELECT @@SESSION.wait_timeout")
        row = await cur.fetchone()
    return float(row[0])


def close_connection(conn: Any, *, graceful: bool) -> None:
    """Close now, without awaiting anything.

    ``graceful`` sends COM_QUIT first so the server logs a clean disconnect
    (not an aborted connection); the transport flushes it before closing.
    It is only sent on a connection whose protocol state is known, since a
    server mid-reply would not read it anyway.
    """
    writer = conn._writer
    if writer is not None and graceful and not writer.transport.is_closing():
        writer.write(_QUIT_PACKET)
    conn.close()

