"""``python -m mysqlpool doctor``: what a server allows a pool, and what to configure.

One connection is opened (through the pool's own :func:`open_connection`)
and asked for the server's version, timeouts and connection limits; it then
measures the round trip with a series of COM_PINGs and tries
COM_RESET_CONNECTION, which the pool relies on to clean a returned
connection. From those facts come two recommendations: the ``recycle`` that
``recycle="auto"`` would pick, and how many connections
(``pool_size + max_overflow``) each process may open so that all of them
together stay below ``max_connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import pymysql

from ._connection import close_connection, open_connection, ping
from ._discovery import EXIT_USAGE, CommandError, Server, describe_error, resolve_server
from ._pool import auto_recycle

__all__ = ["DoctorReport", "connection_ceiling", "run_doctor"]

#: COM_PINGs sent to measure the round trip; the median is reported.
PINGS = 20
#: Share of ``max_connections`` left for administrators and other clients...
RESERVE_FRACTION = 0.10
#: ...and the fewest connections left for them, however small the server.
RESERVE_MIN = 5

# As in the demo: a host that drops packets must not hang the doctor for the
# OS's TCP timeout; a DSN's own connect_timeout wins.
_DEFAULT_CONNECT_TIMEOUT = 10.0
# Everything after the login (a few queries, the pings, the reset) together.
_CHECK_TIMEOUT = 30.0
_COM_RESET_CONNECTION = 0x1F

# Failures caused by the server or the network, reported in one line; any
# other exception is a bug here and keeps its traceback.
_OPERATIONAL_ERRORS = (pymysql.MySQLError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class DoctorReport:
    """What the doctor found out about a server, and what it recommends."""

    #: The server, password redacted, and where its DSN came from.
    server: str
    version: str
    #: "MariaDB" or "MySQL".
    flavour: str
    wait_timeout_session: int
    wait_timeout_global: int
    interactive_timeout: int
    max_connections: int
    threads_connected: int
    #: 0 means no per-account limit.
    max_user_connections: int
    #: The negotiated cipher, or None when the connection is not encrypted.
    tls_cipher: str | None
    #: None when COM_RESET_CONNECTION works, else the server's answer.
    reset_error: str | None
    #: Median COM_PING round trip, in milliseconds.
    round_trip_ms: float
    pings: int
    #: What ``recycle="auto"`` picks for ``wait_timeout_session``, in seconds.
    recycle: float
    processes: int
    #: Connections left for administrators and other clients.
    reserve: int
    #: The recommended ``pool_size + max_overflow`` ceiling per process.
    ceiling: int
    #: How ``ceiling`` was computed, in one line.
    formula: str

    @property
    def tls(self) -> bool:
        """Whether the connection was encrypted."""
        return self.tls_cipher is not None

    @property
    def reset_works(self) -> bool:
        """Whether the server answered COM_RESET_CONNECTION with OK."""
        return self.reset_error is None

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object; these keys are stable."""
        return {
            "server": self.server,
            "version": self.version,
            "flavour": self.flavour,
            "wait_timeout_session": self.wait_timeout_session,
            "wait_timeout_global": self.wait_timeout_global,
            "interactive_timeout": self.interactive_timeout,
            "max_connections": self.max_connections,
            "threads_connected": self.threads_connected,
            "max_user_connections": self.max_user_connections,
            "tls": self.tls,
            "tls_cipher": self.tls_cipher,
            "reset_connection": self.reset_works,
            "reset_connection_error": self.reset_error,
            "round_trip_ms": self.round_trip_ms,
            "pings": self.pings,
            "recommended_recycle": self.recycle,
            "processes": self.processes,
            "reserve": self.reserve,
            "max_connections_per_process": self.ceiling,
            "formula": self.formula,
        }


def connection_ceiling(
    max_connections: int, max_user_connections: int, processes: int
) -> tuple[int, int, str]:
    """How many connections each of ``processes`` pools may open.

    A reserve of :data:`RESERVE_FRACTION` of ``max_connections`` (at least
    :data:`RESERVE_MIN`) is kept for administrators and other clients; a
    per-account limit (``max_user_connections`` > 0) caps the rest, since
    every process logs in as the same account. What is left is shared
    equally by the processes, each getting at least one connection.

    Returns:
        ``(ceiling, reserve, formula)``: the per-process
        ``pool_size + max_overflow`` ceiling, the reserve, and a one-line
        explanation with the numbers filled in.
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    reserve = max(math.ceil(max_connections * RESERVE_FRACTION), RESERVE_MIN)
    available = max_connections - reserve
    formula = (
        f"(max_connections {max_connections} - reserve {reserve} "
        f"[{RESERVE_FRACTION:.0%}, at least {RESERVE_MIN}, for admin and other clients])"
    )
    if max_user_connections > 0 and max_user_connections < available:
        available = max_user_connections
        formula = f"max_user_connections {max_user_connections}"
    plural = "process" if processes == 1 else "processes"
    ceiling = max(available // processes, 1)
    formula = f"{formula} // {processes} {plural} = {ceiling}"
    if available // processes < 1:
        formula += " (at least 1; the server is too small for this many processes)"
    return ceiling, reserve, formula


def flavour_of(version: str) -> str:
    """The server's flavour, ``"MariaDB"`` or ``"MySQL"``, from its ``VERSION()``."""
    return "MariaDB" if "mariadb" in version.lower() else "MySQL"


async def _row(conn: Any, sql: str) -> tuple[Any, ...]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
    if row is None:
        raise pymysql.err.InternalError(f"no row for {sql!r}")
    return tuple(row)


async def _status(conn: Any, sql: str) -> str:
    # SHOW ... STATUS LIKE 'x' returns (name, value); no row means no value.
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
    return "" if row is None or row[1] is None else str(row[1])


async def _try_reset(conn: Any) -> str | None:
    """Send COM_RESET_CONNECTION; None if the server answered OK, else its error."""
    try:
        await conn._execute_command(_COM_RESET_CONNECTION, b"")
        await conn._read_ok_packet()
    except pymysql.MySQLError as exc:
        return describe_error(exc)
    return None


@dataclass(frozen=True)
class _Facts:
    """What the server said, before any recommendation."""

    version: str
    wait_timeout_session: int
    wait_timeout_global: int
    interactive_timeout: int
    max_connections: int
    max_user_connections: int
    threads_connected: int
    tls_cipher: str | None
    reset_error: str | None
    #: Seconds per COM_PING.
    round_trips: list[float]


async def _ask(conn: Any) -> _Facts:
    """Query ``conn``'s server for every fact; COM_RESET_CONNECTION comes last."""
    version, wait_session, wait_global, interactive, max_connections, max_user = await _row(
        conn,
        "SELECT VERSION(), @@SESSION.wait_timeout, @@GLOBAL.wait_timeout, "
        "@@SESSION.interactive_timeout, @@GLOBAL.max_connections, "
        "@@SESSION.max_user_connections",
    )
    threads = await _status(conn, "SHOW GLOBAL STATUS LIKE 'Threads_connected'")
    cipher = await _status(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    round_trips: list[float] = []
    for _ in range(PINGS):
        started = time.perf_counter()
        await ping(conn)
        round_trips.append(time.perf_counter() - started)
    # Last: a reset returns the session variables read above to their
    # global values.
    reset_error = await _try_reset(conn)
    return _Facts(
        version=str(version),
        wait_timeout_session=int(wait_session),
        wait_timeout_global=int(wait_global),
        interactive_timeout=int(interactive),
        max_connections=int(max_connections),
        max_user_connections=int(max_user),
        threads_connected=int(threads or 0),
        tls_cipher=cipher or None,
        reset_error=reset_error,
        round_trips=round_trips,
    )


async def _examine(server: Server, processes: int) -> DoctorReport:
    params = server.params
    if params.connect_timeout is None:
        params = params.replace(connect_timeout=_DEFAULT_CONNECT_TIMEOUT)
    try:
        conn = await open_connection(params, None)
    except _OPERATIONAL_ERRORS as exc:
        raise CommandError(f"{server}: {describe_error(exc, params)}", EXIT_USAGE) from None
    graceful = False
    try:
        facts = await asyncio.wait_for(_ask(conn), _CHECK_TIMEOUT)
        graceful = True
    except _OPERATIONAL_ERRORS as exc:
        if isinstance(exc, asyncio.TimeoutError):
            why = f"no answer within {_CHECK_TIMEOUT:g} s"
        else:
            why = describe_error(exc, params)
        raise CommandError(f"{server}: {why}", EXIT_USAGE) from None
    finally:
        close_connection(conn, graceful=graceful)

    ceiling, reserve, formula = connection_ceiling(
        facts.max_connections, facts.max_user_connections, processes
    )
    return DoctorReport(
        server=str(server),
        version=facts.version,
        flavour=flavour_of(facts.version),
        wait_timeout_session=facts.wait_timeout_session,
        wait_timeout_global=facts.wait_timeout_global,
        interactive_timeout=facts.interactive_timeout,
        max_connections=facts.max_connections,
        threads_connected=facts.threads_connected,
        max_user_connections=facts.max_user_connections,
        tls_cipher=facts.tls_cipher,
        reset_error=facts.reset_error,
        round_trip_ms=round(statistics.median(facts.round_trips) * 1000, 3),
        pings=len(facts.round_trips),
        recycle=auto_recycle(facts.wait_timeout_session),
        processes=processes,
        reserve=reserve,
        ceiling=ceiling,
        formula=formula,
    )


def _report(report: DoctorReport, out: TextIO) -> None:
    def line(label: str, value: object) -> None:
        out.write(f"  {label + ':':<22} {value}\n")

    out.write("mysqlpool doctor\n")
    line("server", report.server)
    line("version", f"{report.version} ({report.flavour})")
    line(
        "wait_timeout",
        f"{report.wait_timeout_session} s session, {report.wait_timeout_global} s global",
    )
    line("interactive_timeout", f"{report.interactive_timeout} s")
    line("max_connections", report.max_connections)
    line("Threads_connected", f"{report.threads_connected} (the doctor's own included)")
    user_limit = report.max_user_connections
    line("max_user_connections", f"{user_limit}" + (" (no limit)" if user_limit == 0 else ""))
    line("TLS", f"yes ({report.tls_cipher})" if report.tls_cipher else "no")
    line("COM_RESET_CONNECTION", "works" if report.reset_works else f"fails: {report.reset_error}")
    line("round trip", f"{report.round_trip_ms:.3f} ms (median of {report.pings} COM_PINGs)")
    out.write("recommendations\n")
    line(
        "recycle",
        f'{report.recycle:g} s (what recycle="auto" picks for a session wait_timeout of '
        f"{report.wait_timeout_session} s)",
    )
    line("pool ceiling", f"pool_size + max_overflow <= {report.ceiling} per process")
    line("formula", report.formula)


def run_doctor(dsn: str | None = None, *, processes: int = 1, as_json: bool = False) -> int:
    """Examine the server and print the report on stdout; return the exit status.

    Args:
        dsn: the server; None resolves one as :func:`resolve_server` does.
        processes: how many processes will each run a pool against the
            server; the per-process ceiling divides by it.
        as_json: print one JSON object (:meth:`DoctorReport.to_json`)
            instead of aligned text.

    Returns:
        0: the server answered every question.

    Raises:
        CommandError: a malformed DSN, no server, an unreachable server,
            rejected credentials, an unknown database, or a failure while
            examining it (status 2; nothing printed on stdout).
    """
    with contextlib.ExitStack() as stack:
        server = resolve_server(dsn, stack, verbose=sys.stderr.isatty())
        report = asyncio.run(_examine(server, processes))
    if as_json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
    else:
        _report(report, sys.stdout)
    return 0
