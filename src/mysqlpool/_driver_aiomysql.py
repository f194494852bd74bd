"""The driver seam for aiomysql (over PyMySQL).

aiomysql exposes neither COM_RESET_CONNECTION, nor a ping that refuses to
reconnect silently, nor a way to see that the server has already hung up on
an idle socket; the few private attributes these need are read here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import aiomysql
import pymysql
from aiomysql.connection import DEFAULT_CHARSET
from pymysql.charset import charset_by_name

from ._deadline import within
from ._driver import CLEAN, CLOSED, DEAD, NEEDS_ROLLBACK, UNREAD_RESULT, InitCallback
from ._params import ConnectParams

__all__ = ["AIOMYSQL", "CONNECTION_LOSS_CODES", "DRIVER", "AiomysqlDriver", "PooledConnection"]

logger = logging.getLogger("mysqlpool")

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
_CLIENT_SSL = 0x800  # capability flag: the server can switch to TLS
_COM_QUIT = 0x01
_COM_RESET_CONNECTION = 0x1F
# A whole COM_QUIT packet: 3-byte length 1, sequence 0, the command byte.
_QUIT_PACKET = struct.pack("<I", 1) + bytes([_COM_QUIT])

_SERVER_STATUS_IN_TRANS = 0x0001
_SERVER_STATUS_AUTOCOMMIT = 0x0002
_SERVER_STATUS_IN_TRANS_READONLY = 0x2000
_IN_TRANSACTION = _SERVER_STATUS_IN_TRANS | _SERVER_STATUS_IN_TRANS_READONLY
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
        will_encrypt = self._ssl_context is not None and self.server_capabilities & _CLIENT_SSL
        if announced == "mysql_clear_password" and not will_encrypt and not self._unix_socket:
            raise pymysql.err.OperationalError(_CR_AUTH_PLUGIN_ERROR, _CLEARTEXT_REFUSED)
        await super()._request_authentication()

    async def _process_auth(self, plugin_name: bytes, auth_packet: Any) -> Any:
        if plugin_name == b"mysql_clear_password" and self._clear_password_refused():
            raise pymysql.err.OperationalError(_CR_AUTH_PLUGIN_ERROR, _CLEARTEXT_REFUSED)
        return await super()._process_auth(plugin_name, auth_packet)


class AiomysqlDriver:
    """:class:`mysqlpool._driver.Driver` for aiomysql."""

    __slots__ = ()

    name = "aiomysql"
    Error: type[Exception] = pymysql.err.MySQLError

    async def connect(self, params: ConnectParams, init: InitCallback | None) -> Any:
        # aiomysql itself only cleans up after ``Exception``, so a cancelled
        # handshake would otherwise leave a socket open.
        conn = PooledConnection(**params.connect_kwargs())
        try:
            await conn._connect()
            if params.ssl is not None and conn._writer.get_extra_info("ssl_object") is None:
                # aiomysql quietly goes on in plaintext when the server offers
                # no TLS; a caller who configured TLS must not send data in clear.
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

    def probe(self, conn: Any) -> object:
        if conn._writer is None:
            return DEAD
        # A transport that lost its connection feeds EOF or an exception to
        # the reader, so the reader alone tells; a byte waiting on an idle
        # connection is an error packet (4031...) sent before the server hung up.
        reader = conn._reader
        if reader._eof or reader._buffer or reader._exception is not None:
            return DEAD
        # aiomysql replaces _result on every statement.
        return conn._result

    def is_dead(self, conn: Any) -> bool:
        return self.probe(conn) is DEAD

    def returned_state(self, conn: Any, probed: object, marker: object) -> str:
        result: Any = probed
        if result is DEAD:
            return CLOSED
        if result is not None and result.unbuffered_active:
            return UNREAD_RESULT
        status = conn.server_status or 0
        if status & _TRANSACTION_STATUS == _SERVER_STATUS_AUTOCOMMIT:
            return CLEAN  # autocommit on, no transaction open
        if status & _IN_TRANSACTION or result is not marker:
            # Autocommit off: a plain SELECT opened a snapshot, unflagged.
            return NEEDS_ROLLBACK
        return CLEAN

    def cancelled_mid_reply(self, conn: Any) -> bool:
        return conn._writer is None and conn._close_reason == "Cancelled during execution"

    def thread_id(self, conn: Any) -> int:
        return int(conn.thread_id())

    def is_connection_lost(self, exc: BaseException | None) -> bool:
        if not isinstance(exc, pymysql.err.Error) or not exc.args:
            return False
        code = exc.args[0]
        if isinstance(code, int):
            return code in CONNECTION_LOSS_CODES
        text = str(code)
        return any(message in text for message in _LOSS_MESSAGES)

    def error_code(self, exc: BaseException | None) -> int | None:
        if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
            return exc.args[0]
        return None

    async def ping(self, conn: Any) -> None:
        await conn.ping(reconnect=False)

    async def rollback(self, conn: Any) -> None:
        await conn.rollback()

    async def reset_connection(self, conn: Any) -> None:
        await conn._execute_command(_COM_RESET_CONNECTION, b"")
        await conn._read_ok_packet()

    async def reset_session(
        self, conn: Any, params: ConnectParams, init: InitCallback | None
    ) -> None:
        # The reset rolls back, drops temporary tables, releases locks, closes
        # prepared statements and returns every session variable to its
        # global value, but keeps the current database.
        await self.reset_connection(conn)
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

    async def kill_query(self, params: ConnectParams, thread_id: int, timeout: float) -> None:
        conn = await within(
            self.connect(params, None), timeout, lambda late: self.close(late, graceful=False)
        )
        try:
            await asyncio.wait_for(conn.query(f"KILL QUERY {int(thread_id)}"), timeout)
        finally:
            self.close(conn, graceful=True)

    async def read_wait_timeout(self, conn: Any) -> float:
        # A plain cursor whatever cursorclass the caller configured (DictCursor...).
        async with conn.cursor(aiomysql.Cursor) as cur:
            await cur.execute("SELECT @@SESSION.wait_timeout")
            row = await cur.fetchone()
        return float(row[0])

    async def show_values(self, conn: Any, statement: str) -> dict[str, str]:
        # A plain cursor whatever cursorclass the caller configured (DictCursor...).
        async with conn.cursor(aiomysql.Cursor) as cur:
            await cur.execute(statement)
            rows = await cur.fetchall()
        return {str(name).lower(): str(value) for name, value in rows}

    def close(self, conn: Any, *, graceful: bool) -> None:
        # COM_QUIT lets the server log a clean disconnect instead of an
        # aborted connection; the transport flushes it before closing. Only
        # sent when the protocol state is known: a server mid-reply would
        # not read it anyway.
        writer = conn._writer
        if writer is not None and graceful and not writer.transport.is_closing():
            writer.write(_QUIT_PACKET)
        conn.close()

    def __repr__(self) -> str:
        return "<driver aiomysql>"


#: The one instance: the driver keeps no state of its own.
AIOMYSQL = AiomysqlDriver()
#: What mysqlpool._driver.driver_for hands out for "aiomysql".
DRIVER = AIOMYSQL
