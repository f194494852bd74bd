"""The driver seam for asyncmy (the MySQL protocol in Cython).

asyncmy's ``Connection`` keeps its socket as an asyncio transport and a
buffered protocol (``_transport``, ``_proto``) instead of aiomysql's stream
reader and writer, but the rest has the same shape: ``_result``,
``server_status``, ``_execute_command``, ``_read_ok_packet``,
``_close_reason``. The few private attributes the seam needs are read here
and nowhere else.

asyncmy quirks handled here (see docs/drivers.md):

* its ``connect`` keywords differ from aiomysql's: ``database`` for ``db``,
  no ``auth_plugin``, and ``connect_timeout`` must be a number;
* it sends the password in clear when the server asks for
  ``mysql_clear_password``, even without TLS: refused through its
  ``auth_plugin_map`` hook, so the connection keeps its own class (and
  asyncmy's fast paths, which test for the exact class);
* a reply whose sequence numbers went wrong raises without closing the
  connection: the pool classifies the error as a lost connection and closes it;
* ``ping()`` on a closed connection says "Already closed" without a code;
* before 0.2.17, a streaming result left unread starts, when collected, a
  read nobody awaits: cleared when the pool closes its connection.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

import asyncmy
import asyncmy.cursors
import asyncmy.errors
import asyncmy.version
from asyncmy.charset import charset_by_name

from ._deadline import within
from ._driver import CLEAN, CLOSED, DEAD, UNREAD_RESULT, InitCallback
from ._params import ConnectParams
from ._wire import (
    AUTOCOMMIT_IDLE,
    CLEARTEXT_REFUSED,
    CR_AUTH_PLUGIN_ERROR,
    CR_SSL_CONNECTION_ERROR,
    DATABASE_SELECTED,
    PLAINTEXT_REFUSED,
    QUIT_PACKET,
    TRANSACTION_STATUS,
    SharedCommands,
    is_loss,
    raised_while_reading,
    rows_unseen,
    state_of_status,
)
from .errors import DriverNotInstalled

__all__ = ["ASYNCMY", "DRIVER", "AsyncmyDriver", "connect_kwargs"]

#: The oldest asyncmy this module works with: the first with the transport
#: and buffered-protocol internals read here (the extra requires it too).
MINIMUM_VERSION = (0, 2, 13)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


if _version(asyncmy.version.__VERSION__) < MINIMUM_VERSION:
    raise DriverNotInstalled(
        "asyncmy", "pip install 'mysqlpool[asyncmy]' (asyncmy>=0.2.13)", asyncmy.version.__VERSION__
    )

#: asyncmy's character set when none is configured (aiomysql's is latin1).
DEFAULT_CHARSET = "utf8mb4"

# asyncmy refuses connect_timeout=None; its largest accepted value (a year)
# passes its check, and connect() then removes the limit (see there).
_NO_CONNECT_TIMEOUT = 31536000

_CLOSED_ON_CANCEL = "Cancelled during execution"  # asyncmy's _close_reason
_CLIENT_SSL = 0x800  # capability flag: the server can switch to TLS


def _offers_tls(conn: Any) -> bool:
    """The server's greeting offered TLS (or was never read)."""
    capabilities = getattr(conn, "server_capabilities", None)
    return capabilities is None or bool(capabilities & _CLIENT_SSL)


class _ClearPasswordRefused:
    """An ``auth_plugin_map`` entry for ``mysql_clear_password``: asyncmy
    builds it when the server asks for that plugin, and it refuses."""

    def __init__(self, conn: Any) -> None:
        raise asyncmy.errors.OperationalError(CR_AUTH_PLUGIN_ERROR, CLEARTEXT_REFUSED)


# Where asyncmy reads replies, as its traceback entries name it.
_CONNECTION_PYX = "asyncmy/connection.pyx"


def _reads_replies(frame: FrameType) -> bool:
    # asyncmy's compiled code still leaves traceback entries, named after
    # its .pyx files and functions: it reads every reply in its connection
    # module, in functions named for it (read_packet, read...).
    code = frame.f_code
    return code.co_filename == _CONNECTION_PYX and "read" in code.co_name


def _plaintext_refused(params: ConnectParams) -> str:
    if params.ssl_allow_plaintext:
        # asyncmy has no plaintext fallback to allow: it fails the handshake.
        return (
            f"{PLAINTEXT_REFUSED} (asyncmy can't go on in plaintext: "
            "ssl_allow_plaintext=True needs the aiomysql driver)"
        )
    return PLAINTEXT_REFUSED


def connect_kwargs(params: ConnectParams) -> dict[str, Any]:
    """``params`` as keywords for ``asyncmy.connect`` / ``asyncmy.Connection``."""
    kwargs = params.connect_kwargs()
    kwargs["database"] = kwargs.pop("db")
    del kwargs["auth_plugin"]  # ConnectParams refuses a non-empty one for asyncmy
    if kwargs["connect_timeout"] is None:
        kwargs["connect_timeout"] = _NO_CONNECT_TIMEOUT
    if params.ssl is None and params.unix_socket is None:
        # Without TLS the password may only travel scrambled. (With ssl set,
        # asyncmy always switches to TLS before authenticating, and connect()
        # below checks that it did.)
        plugins = dict(kwargs.get("auth_plugin_map") or {})
        plugins["mysql_clear_password"] = _ClearPasswordRefused
        kwargs["auth_plugin_map"] = plugins
    return kwargs


class AsyncmyDriver(SharedCommands):
    """:class:`mysqlpool._driver.Driver` for asyncmy."""

    __slots__ = ()

    name = "asyncmy"
    Error: type[Exception] = asyncmy.errors.MySQLError
    OperationalError: type[Exception] = asyncmy.errors.OperationalError

    async def connect(self, params: ConnectParams, init: InitCallback | None) -> Any:
        conn: Any = asyncmy.Connection(**connect_kwargs(params))  # type: ignore[no-untyped-call]
        if params.connect_timeout is None:
            # asyncmy wraps its TCP connect in asyncio.wait_for whenever it
            # has a timeout, and before Python 3.12 wait_for swallows a
            # cancellation that arrives as the connect completes: the
            # connection then outlives its cancelled opener, unclosed. With
            # no timeout of its own it awaits the connect directly; the pool
            # bounds the attempt.
            conn._connect_timeout = None
        try:
            # asyncmy closes the socket itself on any failure of connect(),
            # cancellation included; init and the TLS check are ours to clean up.
            try:
                await conn.connect()
            except asyncmy.errors.OperationalError:
                if params.ssl is not None and not _offers_tls(conn):
                    # asyncmy never falls back to plaintext, but reports a
                    # server without TLS as a failed TLS handshake (2003).
                    raise asyncmy.errors.OperationalError(
                        CR_SSL_CONNECTION_ERROR, _plaintext_refused(params)
                    ) from None
                raise
            if params.ssl is not None and conn._transport.get_extra_info("ssl_object") is None:
                raise asyncmy.errors.OperationalError(
                    CR_SSL_CONNECTION_ERROR, _plaintext_refused(params)
                )
            if init is not None:
                await init(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def probe(self, conn: Any) -> object:
        if conn._transport is None:
            return DEAD
        # The protocol object receives everything the socket does: EOF when
        # the connection was lost (set with or without an error), and bytes
        # an idle connection should never get (an error packet, 4031...,
        # sent before a hang-up).
        proto = conn._proto
        if proto.eof or proto.length != proto.pos:
            return DEAD
        # asyncmy replaces _result on every statement.
        return conn._result

    def is_dead(self, conn: Any) -> bool:
        return self.probe(conn) is DEAD

    def returned_state(self, conn: Any, probed: object, marker: object) -> str:
        result: Any = probed
        if result is DEAD:
            return CLOSED
        if result is not None and result.unbuffered_active:
            return UNREAD_RESULT
        status = conn.server_status
        if status & TRANSACTION_STATUS == AUTOCOMMIT_IDLE:
            return CLEAN  # autocommit on, no transaction open
        # With stmt_cache_size, a prepared statement's fast path leaves no
        # result behind: whether one ran since the checkout can't be told.
        ran = result is not marker or conn._stmt_cache_size > 0
        return state_of_status(status, ran)

    def cancelled_mid_reply(self, conn: Any) -> bool:
        return conn._transport is None and conn._close_reason == _CLOSED_ON_CANCEL

    def thread_id(self, conn: Any) -> int:
        return int(conn.thread_id())

    def is_connection_lost(self, exc: BaseException | None) -> bool:
        return isinstance(exc, asyncmy.errors.MySQLError) and is_loss(exc.args)

    def error_code(self, exc: BaseException | None) -> int | None:
        if isinstance(exc, asyncmy.errors.MySQLError) and exc.args:
            code = exc.args[0]
            if isinstance(code, int):
                return code
        return None

    def raised_mid_reply(self, exc: BaseException) -> bool:
        return raised_while_reading(self.error_code(exc), exc, _reads_replies)

    def closed_state(self) -> dict[str, Any]:
        # asyncmy keeps a connection's state in C slots, not an instance
        # dict: the drop-in's holder objects (aiomysql only) can't share it.
        raise NotImplementedError("the drop-in mode's holder objects need aiomysql")

    async def reset_session(
        self, conn: Any, params: ConnectParams, init: InitCallback | None
    ) -> None:
        # The reset rolls back, drops temporary tables, releases locks, closes
        # prepared statements and returns every session variable to its
        # global value, but keeps the current database.
        await self.reset_connection(conn)
        # Statement ids do not survive the reset: forget asyncmy's cached ones.
        conn._stmt_cache.clear()
        if params.db is not None:
            await conn.select_db(params.db)
        # The configured values, not the driver's current ones: the holder may
        # have changed those through conn.set_charset() or conn.autocommit().
        charset = params.charset or DEFAULT_CHARSET
        assignments = [f"NAMES {conn.escape(charset)}", f"autocommit={int(params.autocommit)}"]
        if params.sql_mode is not None:
            assignments.append(f"sql_mode={conn.escape(params.sql_mode)}")
        await conn.query("SET " + ", ".join(assignments))
        if params.db is None:
            # No statement unselects a database: one the holder selected
            # (select_db(), USE) means the connection can't be as new. (A
            # round trip of its own: asyncmy's connections don't announce
            # multi-statements, which aiomysql's reset folds it into.)
            ((selected,),) = await rows_unseen(conn, asyncmy.cursors.Cursor, "SELECT DATABASE()")
            if selected is not None:
                raise asyncmy.errors.InterfaceError(0, DATABASE_SELECTED)
        conn._charset = charset
        conn._encoding = charset_by_name(charset).encoding
        conn.autocommit_mode = params.autocommit
        if params.init_command is not None:
            await conn.query(params.init_command)
        if init is not None:
            await init(conn)

    async def kill_query(self, params: ConnectParams, thread_id: int, timeout: float) -> None:
        conn = await within(self.connect(params, None), timeout)
        try:
            await asyncio.wait_for(conn.query(f"KILL QUERY {int(thread_id)}"), timeout)
        finally:
            self.close(conn, graceful=True)

    async def read_wait_timeout(self, conn: Any) -> float:
        rows = await rows_unseen(conn, asyncmy.cursors.Cursor, "SELECT @@SESSION.wait_timeout")
        return float(rows[0][0])

    async def show_values(self, conn: Any, statement: str) -> dict[str, str]:
        rows = await rows_unseen(conn, asyncmy.cursors.Cursor, statement)
        return {str(name).lower(): str(value) for name, value in rows}

    def close(self, conn: Any, *, graceful: bool) -> None:
        # COM_QUIT lets the server log a clean disconnect instead of an
        # aborted connection; the transport flushes it before closing. Only
        # sent when the protocol state is known: a server mid-reply would
        # not read it anyway.
        transport = conn._transport
        if transport is not None and graceful and not transport.is_closing():
            transport.write(QUIT_PACKET)
        result = conn._result
        if result is not None and result.unbuffered_active:
            # Before 0.2.17, an unfinished result's finalizer starts a read
            # nobody awaits (a "never awaited" warning): it is moot once closed.
            result.unbuffered_active = False
        conn.close()

    def __repr__(self) -> str:
        return "<driver asyncmy>"


#: The one instance: the driver keeps no state of its own.
ASYNCMY = AsyncmyDriver()
#: What mysqlpool._driver.driver_for hands out for "asyncmy".
DRIVER = ASYNCMY
