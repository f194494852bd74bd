"""The driver seam for aiomysql (over PyMySQL).

aiomysql exposes neither COM_RESET_CONNECTION, nor a ping that refuses to
reconnect silently, nor a way to see that the server has already hung up on
an idle socket; the few private attributes these need are read here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType
from typing import Any

import aiomysql
import aiomysql.connection
import pymysql
from aiomysql.connection import DEFAULT_CHARSET
from pymysql.charset import charset_by_name

from ._deadline import within
from ._driver import CLEAN, CLOSED, DEAD, UNREAD_RESULT, InitCallback
from ._params import ConnectParams
from ._wire import (
    AUTOCOMMIT_IDLE,
    CLEARTEXT_REFUSED,
    CONNECTION_LOSS_CODES,
    CR_AUTH_PLUGIN_ERROR,
    CR_SSL_CONNECTION_ERROR,
    DATABASE_SELECTED,
    NO_RESULTS,
    PLAINTEXT_REFUSED,
    QUIT_PACKET,
    TRANSACTION_STATUS,
    SharedCommands,
    is_loss,
    raised_while_reading,
    restore_results,
    rows_unseen,
    state_of_status,
)

__all__ = [
    "AIOMYSQL",
    "CONNECTION_LOSS_CODES",
    "DRIVER",
    "AiomysqlDriver",
    "PooledConnection",
]

logger = logging.getLogger("mysqlpool")

_AIOMYSQL_CONNECTION = vars(aiomysql.connection)
_CLIENT_SSL = 0x800  # capability flag: the server can switch to TLS


class PooledConnection(aiomysql.Connection):  # type: ignore[misc]
    """aiomysql's connection, refusing to send a password in clear over the network.

    A server may ask for the ``mysql_clear_password`` plugin (PAM, LDAP);
    aiomysql then sends the password as is, even without TLS. Here that is
    refused unless the connection is encrypted or a local unix socket.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the connection is opened with, option files
        # (read_default_file) included: what a reset restores.
        self._mysqlpool_db: str | None = self._db or None
        self._mysqlpool_charset: str = self._charset

    def _clear_password_refused(self) -> bool:
        encrypted = self._writer is not None and self._writer.get_extra_info("ssl_object")
        return not encrypted and not self._unix_socket

    async def _request_authentication(self) -> None:
        announced = self._client_auth_plugin or self._server_auth_plugin
        will_encrypt = self._ssl_context is not None and self.server_capabilities & _CLIENT_SSL
        if announced == "mysql_clear_password" and not will_encrypt and not self._unix_socket:
            raise pymysql.err.OperationalError(CR_AUTH_PLUGIN_ERROR, CLEARTEXT_REFUSED)
        await super()._request_authentication()

    async def _process_auth(self, plugin_name: bytes, auth_packet: Any) -> Any:
        if plugin_name == b"mysql_clear_password" and self._clear_password_refused():
            raise pymysql.err.OperationalError(CR_AUTH_PLUGIN_ERROR, CLEARTEXT_REFUSED)
        return await super()._process_auth(plugin_name, auth_packet)


class AiomysqlDriver(SharedCommands):
    """:class:`mysqlpool._driver.Driver` for aiomysql."""

    __slots__ = ()

    name = "aiomysql"
    Error: type[Exception] = pymysql.err.MySQLError
    OperationalError: type[Exception] = pymysql.err.OperationalError

    async def connect(self, params: ConnectParams, init: InitCallback | None) -> Any:
        # aiomysql itself only cleans up after ``Exception``, so a cancelled
        # handshake would otherwise leave a socket open.
        conn = PooledConnection(**params.connect_kwargs())
        try:
            await conn._connect()
            if params.ssl is not None and conn._writer.get_extra_info("ssl_object") is None:
                # aiomysql quietly goes on in plaintext when the server offers
                # no TLS; a caller who configured TLS must not send data in
                # clear, unless they said so.
                if not params.ssl_allow_plaintext:
                    raise pymysql.err.OperationalError(
                        CR_SSL_CONNECTION_ERROR,
                        f"{PLAINTEXT_REFUSED} (ssl_allow_plaintext=True would go on in plaintext)",
                    )
                logger.warning(
                    "mysqlpool: %s:%s offers no TLS; connected in plaintext as "
                    "ssl_allow_plaintext=True allows",
                    conn.host,
                    conn.port,
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
        if status & TRANSACTION_STATUS == AUTOCOMMIT_IDLE:
            return CLEAN  # autocommit on, no transaction open
        return state_of_status(status, result is not marker)

    def cancelled_mid_reply(self, conn: Any) -> bool:
        return conn._writer is None and conn._close_reason == "Cancelled during execution"

    def thread_id(self, conn: Any) -> int:
        return int(conn.thread_id())

    def is_connection_lost(self, exc: BaseException | None) -> bool:
        return isinstance(exc, pymysql.err.Error) and is_loss(exc.args)

    def error_code(self, exc: BaseException | None) -> int | None:
        if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
            return exc.args[0]
        return None

    def raised_mid_reply(self, exc: BaseException) -> bool:
        return raised_while_reading(self.error_code(exc), exc, _reads_replies)

    def closed_state(self) -> dict[str, Any]:
        # As aiomysql's close() leaves them: closed is True, a statement
        # raises "Not connected", close()/ensure_closed() do nothing.
        return {"_writer": None, "_reader": None}

    async def reset_session(
        self, conn: Any, params: ConnectParams, init: InitCallback | None
    ) -> None:
        # The reset rolls back, drops temporary tables, releases locks, closes
        # prepared statements and returns every session variable to its
        # global value, but keeps the current database.
        await self.reset_connection(conn)
        # What the connection was opened with (an option file's values
        # included), not the driver's current values: the holder may have
        # changed those through conn.set_charset() or conn.autocommit().
        db, charset = _opened_with(conn, params)
        if db is not None:
            await conn.select_db(db)
        assignments = [f"NAMES {conn.escape(charset)}", f"autocommit={int(params.autocommit)}"]
        if params.sql_mode is not None:
            assignments.append(f"sql_mode={conn.escape(params.sql_mode)}")
        statement = "SET " + ", ".join(assignments)
        if db is None:
            # No statement unselects a database: one the holder selected
            # (select_db(), USE) means the connection can't be as new.
            await conn.query(statement + "; SELECT DATABASE()")
            await conn.next_result()
            ((selected,),) = conn._result.rows
            if selected is not None:
                raise pymysql.err.InterfaceError(0, DATABASE_SELECTED)
        else:
            await conn.query(statement)
        conn._charset = charset
        conn._encoding = charset_by_name(charset).encoding
        conn.autocommit_mode = params.autocommit
        if params.init_command is not None:
            await conn.query(params.init_command)
        if init is not None:
            await init(conn)
        restore_results(conn, NO_RESULTS)  # as a new connection's

    async def kill_query(self, params: ConnectParams, thread_id: int, timeout: float) -> None:
        conn = await within(
            self.connect(params, None), timeout, lambda late: self.close(late, graceful=False)
        )
        try:
            await asyncio.wait_for(conn.query(f"KILL QUERY {int(thread_id)}"), timeout)
        finally:
            self.close(conn, graceful=True)

    async def read_wait_timeout(self, conn: Any) -> float:
        (row,) = await rows_unseen(conn, aiomysql.Cursor, "SELECT @@SESSION.wait_timeout")
        return float(row[0])

    async def show_values(self, conn: Any, statement: str) -> dict[str, str]:
        rows = await rows_unseen(conn, aiomysql.Cursor, statement)
        return {str(name).lower(): str(value) for name, value in rows}

    def close(self, conn: Any, *, graceful: bool) -> None:
        # COM_QUIT lets the server log a clean disconnect instead of an
        # aborted connection; the transport flushes it before closing. Only
        # sent when the protocol state is known: a server mid-reply would
        # not read it anyway.
        writer = conn._writer
        if writer is not None and graceful and not writer.transport.is_closing():
            writer.write(QUIT_PACKET)
        conn.close()

    def __repr__(self) -> str:
        return "<driver aiomysql>"


def _opened_with(conn: Any, params: ConnectParams) -> tuple[str | None, str]:
    """The database and character set ``conn`` was opened with."""
    if isinstance(conn, PooledConnection):
        return conn._mysqlpool_db, conn._mysqlpool_charset
    return params.db, params.charset or DEFAULT_CHARSET


def _reads_replies(frame: FrameType) -> bool:
    # aiomysql reads every reply in its connection module, in functions
    # named for it (_read_packet, read, _read_query_result...).
    return frame.f_globals is _AIOMYSQL_CONNECTION and "read" in frame.f_code.co_name


#: The one instance: the driver keeps no state of its own.
AIOMYSQL = AiomysqlDriver()
#: What mysqlpool._driver.driver_for hands out for "aiomysql".
DRIVER = AIOMYSQL
