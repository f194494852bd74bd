"""``python -m mysqlpool doctor``: what a server allows a pool, and what to configure.

One connection is opened (through the pool's own :func:`open_connection`)
and asked for the server's version, timeouts and connection limits; it then
measures the round trip with a series of COM_PINGs and tries
COM_RESET_CONNECTION, which the pool relies on to clean a returned
connection. From those facts come two recommendations: the ``recycle`` that
``recycle="auto"`` would pick, and how many connections
(``pool_size + max_overflow``) each process may open so that all of them
together stay below ``max_connections``.

A DSN with several hosts has each of them examined at once, each login
bounded by the connect timeout: whether it answers, its version, its role
(``@@read_only``) and, on Galera, its ``wsrep_*`` state, or for a replica
whether replication runs. The full report is about the first usable host;
a line per host, the hosts a pool would use for each ``target`` and what
looks wrong follow. The ceiling comes from the host allowing the fewest
connections, since on failover one host may get all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import pymysql

from ._connection import close_connection, open_connection, ping
from ._discovery import EXIT_USAGE, CommandError, Server, describe_error, resolve_server
from ._dsn import ConnectParams
from ._hosts import TARGETS, HostSet
from ._pool import auto_recycle
from ._server_state import ServerState, read_server_state

__all__ = [
    "DoctorReport",
    "GaleraFacts",
    "HostReport",
    "MultiHostReport",
    "ReplicationFacts",
    "connection_ceiling",
    "host_ceiling",
    "host_warnings",
    "pool_targets",
    "run_doctor",
]

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


def _from_facts(
    server: str, facts: _Facts, processes: int, ceiling: tuple[int, int, str] | None = None
) -> DoctorReport:
    """The report on ``facts``; ``ceiling`` (as :func:`connection_ceiling`
    returns it) when it comes from other numbers than these facts'."""
    if ceiling is None:
        ceiling = connection_ceiling(facts.max_connections, facts.max_user_connections, processes)
    per_process, reserve, formula = ceiling
    return DoctorReport(
        server=server,
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
        round_trip_ms=_median_ms(facts.round_trips),
        pings=len(facts.round_trips),
        recycle=auto_recycle(facts.wait_timeout_session),
        processes=processes,
        reserve=reserve,
        ceiling=per_process,
        formula=formula,
    )


def _median_ms(round_trips: list[float]) -> float:
    return round(statistics.median(round_trips) * 1000, 3)


def _with_timeout(params: ConnectParams) -> tuple[ConnectParams, float]:
    """``params`` with a connect timeout (the DSN's, else the default), and it."""
    if params.connect_timeout is None:
        params = params.replace(connect_timeout=_DEFAULT_CONNECT_TIMEOUT)
        return params, _DEFAULT_CONNECT_TIMEOUT
    return params, params.connect_timeout


async def _examine(server: Server, processes: int) -> DoctorReport:
    params, _ = _with_timeout(server.params)
    try:
        conn = await open_connection(params, None)
    except _OPERATIONAL_ERRORS as exc:
        raise CommandError(f"{server}: {describe_error(exc, params)}", EXIT_USAGE) from None
    graceful = False
    try:
        facts = await asyncio.wait_for(_ask(conn), _CHECK_TIMEOUT)
        graceful = True
    except _OPERATIONAL_ERRORS as exc:
        raise CommandError(f"{server}: {_why(exc, params, _CHECK_TIMEOUT)}", EXIT_USAGE) from None
    finally:
        close_connection(conn, graceful=graceful)
    return _from_facts(str(server), facts, processes)


def _why(exc: BaseException, params: ConnectParams, timeout: float) -> str:
    """One line for an operational failure; a timeout says how long was waited."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout:g} s"
    return describe_error(exc, params)


# ------------------------------------------------------------- several hosts


@dataclass(frozen=True)
class GaleraFacts:
    """A Galera node's view of itself and of its cluster (``SHOW GLOBAL STATUS``)."""

    #: ``Synced``, ``Donor/Desynced``, ``Joining``...
    local_state_comment: str
    #: ``ON`` or ``OFF``.
    wsrep_ready: str
    cluster_size: int | None
    #: ``Primary``, ``non-Primary`` or ``Disconnected``.
    cluster_status: str
    #: Equal on every node of one cluster.
    cluster_state_uuid: str

    def to_json(self) -> dict[str, Any]:
        return {
            "wsrep_local_state_comment": self.local_state_comment,
            "wsrep_ready": self.wsrep_ready,
            "wsrep_cluster_size": self.cluster_size,
            "wsrep_cluster_status": self.cluster_status,
            "wsrep_cluster_state_uuid": self.cluster_state_uuid,
        }


@dataclass(frozen=True)
class ReplicationFacts:
    """Whether a read-only server replicates (``SHOW REPLICA STATUS``)."""

    #: ``running``, ``stopped``, ``not configured`` (no replication set up), or
    #: ``unknown`` (the account may not ask; :attr:`error` says why).
    status: str
    #: ``Slave_IO_Running`` / ``Slave_SQL_Running``: ``Yes``, ``No``,
    #: ``Connecting``...; with several channels, the first that isn't ``Yes``.
    io_running: str | None = None
    sql_running: str | None = None
    #: ``Seconds_Behind_Master`` (the largest of several channels); None when not running.
    seconds_behind_master: int | None = None
    #: Why ``unknown``; or the replica's last IO/SQL error.
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "io_running": self.io_running,
            "sql_running": self.sql_running,
            "seconds_behind_master": self.seconds_behind_master,
            "error": self.error,
        }

    def describe(self) -> str:
        if self.status == "running":
            return f"replication running ({self.seconds_behind_master} s behind)"
        if self.status == "stopped":
            text = (
                f"replication stopped (Slave_IO_Running {self.io_running}, "
                f"Slave_SQL_Running {self.sql_running})"
            )
            return f"{text}: {self.error}" if self.error else text
        if self.status == "unknown":
            return f"replication unknown ({self.error})"
        return "replication not configured"


@dataclass(frozen=True)
class HostReport:
    """What one server of a multi-host DSN said, or why it said nothing."""

    host: str
    port: int
    #: Whether the doctor could log in.
    reachable: bool
    #: Why it couldn't (or why a question after the login failed), in one line.
    error: str | None = None
    #: Its role and Galera readiness, as a pool reads them.
    state: ServerState | None = None
    version: str | None = None
    max_connections: int | None = None
    #: 0 means no per-account limit.
    max_user_connections: int | None = None
    wait_timeout_session: int | None = None
    round_trip_ms: float | None = None
    #: None off Galera.
    galera: GaleraFacts | None = None
    #: None unless the server is read-only (a replica).
    replication: ReplicationFacts | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def flavour(self) -> str | None:
        return None if self.version is None else flavour_of(self.version)

    @property
    def role(self) -> str | None:
        """``"primary"`` (``@@read_only=0``), ``"replica"``, or None if unknown."""
        return None if self.state is None else self.state.role

    @property
    def usable(self) -> bool:
        """Whether a pool could use it now: it answered every question and,
        on Galera, is ready and Synced."""
        return self.reachable and self.error is None and self.state is not None and self.state.ready

    @property
    def status(self) -> str:
        """``reachable`` (and usable), ``unreachable``, ``not ready`` (a Galera
        node) or ``error`` (a question after the login failed)."""
        if not self.reachable:
            return "unreachable"
        if self.error is not None:
            return "error"
        if self.state is not None and not self.state.ready:
            return "not ready"
        return "reachable"

    @property
    def why_not_usable(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.state is not None:
            return self.state.why_not_ready()
        return None

    def to_json(self) -> dict[str, Any]:
        """The host as a JSON object; these keys are stable."""
        return {
            "address": self.address,
            "host": self.host,
            "port": self.port,
            "status": self.status,
            "reachable": self.reachable,
            "usable": self.usable,
            "error": self.why_not_usable,
            "version": self.version,
            "flavour": self.flavour,
            "role": self.role,
            "read_only": None if self.state is None else self.state.read_only,
            "max_connections": self.max_connections,
            "max_user_connections": self.max_user_connections,
            "wait_timeout_session": self.wait_timeout_session,
            "round_trip_ms": self.round_trip_ms,
            "galera": None if self.galera is None else self.galera.to_json(),
            "replication": None if self.replication is None else self.replication.to_json(),
        }


@dataclass(frozen=True)
class MultiHostReport:
    """The doctor's report on a DSN with several hosts."""

    #: The full report on :attr:`examined`; its ``server`` is the whole DSN,
    #: its ceiling comes from :attr:`ceiling_host`.
    report: DoctorReport
    #: The first host of the DSN that answered every question.
    examined: str
    hosts: tuple[HostReport, ...]
    #: The reachable host that allows the fewest connections per process.
    ceiling_host: str
    #: For each ``target``, the hosts a pool would use now.
    targets: dict[str, list[str]]
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """:meth:`DoctorReport.to_json`, plus the hosts and the verdict."""
        return {
            **self.report.to_json(),
            "examined_host": self.examined,
            "ceiling_host": self.ceiling_host,
            "targets": self.targets,
            "warnings": list(self.warnings),
            "hosts": [host.to_json() for host in self.hosts],
        }


_REPLICATION_COLUMNS = {
    # MySQL 8.0.22+'s SHOW REPLICA STATUS renames them; MariaDB keeps "Slave".
    "io": ("Slave_IO_Running", "Replica_IO_Running"),
    "sql": ("Slave_SQL_Running", "Replica_SQL_Running"),
    "lag": ("Seconds_Behind_Master", "Seconds_Behind_Source"),
    "io_error": ("Last_IO_Error",),
    "sql_error": ("Last_SQL_Error",),
}
_ER_PARSE_ERROR = 1064


async def _show(conn: Any, statement: str) -> dict[str, str]:
    """``SHOW ... VARIABLES/STATUS`` as ``{lowercase name: value}``."""
    async with conn.cursor() as cur:
        await cur.execute(statement)
        rows = await cur.fetchall()
    return {str(name).lower(): "" if value is None else str(value) for name, value in rows}


async def _table(conn: Any, statement: str) -> list[dict[str, Any]]:
    async with conn.cursor() as cur:
        await cur.execute(statement)
        rows = await cur.fetchall()
        names = [column[0] for column in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in rows]


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


async def _replication(conn: Any) -> ReplicationFacts:
    """What ``SHOW REPLICA STATUS`` (``SHOW SLAVE STATUS`` before MySQL
    8.0.22 / MariaDB 10.5) says; ``unknown`` if the account may not run it."""
    try:
        try:
            channels = await _table(conn, "SHOW REPLICA STATUS")
        except pymysql.MySQLError as exc:
            if not (exc.args and exc.args[0] == _ER_PARSE_ERROR):
                raise
            channels = await _table(conn, "SHOW SLAVE STATUS")
    except pymysql.MySQLError as exc:
        return ReplicationFacts("unknown", error=describe_error(exc))
    if not channels:
        return ReplicationFacts("not configured")

    def column(channel: dict[str, Any], key: str) -> str | None:
        for name in _REPLICATION_COLUMNS[key]:
            value = channel.get(name)
            if value is not None:
                return " ".join(str(value).split())
        return None

    io = [column(channel, "io") or "unknown" for channel in channels]
    sql = [column(channel, "sql") or "unknown" for channel in channels]
    lags = [_int_or_none(column(channel, "lag")) for channel in channels]
    errors = [
        text
        for channel in channels
        for text in (column(channel, "io_error"), column(channel, "sql_error"))
        if text
    ]
    running = all(value == "Yes" for value in io + sql)
    return ReplicationFacts(
        "running" if running else "stopped",
        io_running=next((value for value in io if value != "Yes"), "Yes"),
        sql_running=next((value for value in sql if value != "Yes"), "Yes"),
        seconds_behind_master=None if None in lags else max(lag for lag in lags if lag is not None),
        error=errors[0] if errors else None,
    )


async def _host_facts(conn: Any, host: str, port: int) -> HostReport:
    """Role, version, limits, Galera and replication state: ``SHOW`` statements
    only, which a Galera node that isn't ready still answers."""
    state = await read_server_state(conn)
    variables = await _show(
        conn,
        "SHOW SESSION VARIABLES WHERE Variable_name IN "
        "('version', 'max_connections', 'max_user_connections')",
    )
    galera = None
    if state.galera_state is not None:
        status = await _show(
            conn,
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment', "
            "'wsrep_ready', 'wsrep_cluster_size', 'wsrep_cluster_status', "
            "'wsrep_cluster_state_uuid')",
        )
        galera = GaleraFacts(
            local_state_comment=status.get("wsrep_local_state_comment", "unknown"),
            wsrep_ready=status.get("wsrep_ready", "unknown"),
            cluster_size=_int_or_none(status.get("wsrep_cluster_size")),
            cluster_status=status.get("wsrep_cluster_status", "unknown"),
            cluster_state_uuid=status.get("wsrep_cluster_state_uuid", ""),
        )
    return HostReport(
        host,
        port,
        reachable=True,
        state=state,
        version=variables.get("version"),
        max_connections=_int_or_none(variables.get("max_connections")),
        max_user_connections=_int_or_none(variables.get("max_user_connections")),
        galera=galera,
        replication=await _replication(conn) if state.read_only else None,
    )


async def _probe_host(
    params: ConnectParams, host: str, port: int
) -> tuple[HostReport, _Facts | None]:
    """Everything about one host; its full facts too when it is usable.

    The login and the ``SHOW`` statements are each bounded by the connect
    timeout, the full examination by :data:`_CHECK_TIMEOUT`. A failure is
    part of the report, never raised.
    """
    one, timeout = _with_timeout(params.for_host(host, port))
    try:
        # open_connection's connect_timeout covers the TCP connect only; a
        # server that accepts but never greets must not hang the doctor.
        conn = await asyncio.wait_for(open_connection(one, None), timeout)
    except _OPERATIONAL_ERRORS as exc:
        return HostReport(host, port, reachable=False, error=_why(exc, one, timeout)), None
    graceful = False
    try:
        try:
            found = await asyncio.wait_for(_host_facts(conn, host, port), timeout)
        except _OPERATIONAL_ERRORS as exc:
            return HostReport(host, port, reachable=True, error=_why(exc, one, timeout)), None
        if found.state is not None and not found.state.ready:
            # Anything but SHOW fails with 1047 on such a node.
            graceful = True
            return found, None
        try:
            facts = await asyncio.wait_for(_ask(conn), _CHECK_TIMEOUT)
        except _OPERATIONAL_ERRORS as exc:
            return dataclasses.replace(found, error=_why(exc, one, _CHECK_TIMEOUT)), None
        graceful = True
        examined = dataclasses.replace(
            found,
            wait_timeout_session=facts.wait_timeout_session,
            round_trip_ms=_median_ms(facts.round_trips),
        )
        return examined, facts
    finally:
        close_connection(conn, graceful=graceful)


def host_ceiling(
    hosts: list[HostReport], processes: int
) -> tuple[HostReport, tuple[int, int, str]] | None:
    """The reachable host allowing the fewest connections per process, and
    :func:`connection_ceiling` for it; None if no host told its limits.

    On failover one host may get every process's connections, so each must
    allow the whole ceiling: the smallest ``max_connections`` (or per-account
    limit) decides.
    """
    best: tuple[HostReport, tuple[int, int, str]] | None = None
    for host in hosts:
        if not host.reachable or host.max_connections is None:
            continue
        ceiling = connection_ceiling(
            host.max_connections, host.max_user_connections or 0, processes
        )
        if best is None or ceiling[0] < best[1][0]:
            best = host, ceiling
    return best


def pool_targets(params: ConnectParams, hosts: list[HostReport]) -> dict[str, list[str]]:
    """For each ``target``, the addresses of the hosts a pool would use now,
    decided as the pool does (:meth:`HostSet.refusal`)."""
    states = [(host, host.state) for host in hosts if host.usable and host.state is not None]
    targets: dict[str, list[str]] = {}
    for target in TARGETS:
        hostset = HostSet(params, "failover", target)
        chosen = [host for host, state in states if hostset.refusal(state) is None]
        if target == "prefer_replica":
            chosen = [host for host in chosen if host.role == "replica"] or chosen
        targets[target] = [host.address for host in chosen]
    return targets


def _status_detail(host: HostReport) -> str:
    if host.status == "not ready" and host.galera is not None:
        return f"not ready: Galera {host.galera.local_state_comment}"
    return host.status


def host_warnings(hosts: list[HostReport]) -> list[str]:
    """What looks wrong across the hosts, one line each."""
    warnings: list[str] = []
    unusable = [host for host in hosts if not host.usable]
    if unusable:
        verb = "is" if len(unusable) == 1 else "are"
        listed = ", ".join(f"{host.address} ({_status_detail(host)})" for host in unusable)
        warnings.append(f"{len(unusable)} of {len(hosts)} hosts {verb} not usable now: {listed}")
    usable = [host for host in hosts if host.usable]
    if usable and not any(host.role == "primary" for host in usable):
        warnings.append(
            "no host is writable: every usable host is read-only, so writes fail "
            "and a pool with target='primary' gets no connection"
        )
    # Every host whose role is known, usable or not: two writable servers
    # are worth a look even while one of them is failing.
    primaries = [host for host in hosts if host.role == "primary"]
    clusters = {host.galera.cluster_state_uuid if host.galera else None for host in primaries}
    if len(primaries) > 1 and (None in clusters or len(clusters) > 1):
        listed = ", ".join(host.address for host in primaries)
        warnings.append(
            f"{len(primaries)} hosts are primaries (writable) but not nodes of one Galera "
            f"cluster: {listed}; a split brain, or a replica without read_only?"
        )
    for host in hosts:
        if host.galera is not None and host.galera.cluster_status != "Primary":
            warnings.append(
                f"{host.address}: wsrep_cluster_status is {host.galera.cluster_status}, "
                "not Primary: the node is cut off from the cluster's majority"
            )
        replication = host.replication
        if replication is not None and replication.status in ("stopped", "not configured"):
            warnings.append(f"{host.address}: read-only, {replication.describe()}")
    timeouts = {
        host.address: host.wait_timeout_session
        for host in usable
        if host.wait_timeout_session is not None
    }
    if len(set(timeouts.values())) > 1:
        listed = ", ".join(f"{seconds} s on {address}" for address, seconds in timeouts.items())
        warnings.append(
            f'wait_timeout differs between hosts ({listed}): recycle="auto" follows the '
            f"first connection's host; recycle={auto_recycle(min(timeouts.values())):g} "
            "suits them all"
        )
    return warnings


async def _examine_hosts(server: Server, processes: int) -> MultiHostReport:
    params = server.params
    probes = await asyncio.gather(*(_probe_host(params, host, port) for host, port in params.hosts))
    hosts = [host for host, _ in probes]
    first = next(((host, facts) for host, facts in probes if facts is not None), None)
    ceiling = host_ceiling(hosts, processes)
    if first is None or ceiling is None:
        what = "usable" if any(host.reachable for host in hosts) else "reachable"
        reasons = "; ".join(f"{host.address}: {host.why_not_usable}" for host in hosts)
        raise CommandError(f"{server}: no host is {what}: {reasons}", EXIT_USAGE)
    examined, facts = first
    ceiling_host, numbers = ceiling
    return MultiHostReport(
        report=_from_facts(str(server), facts, processes, numbers),
        examined=examined.address,
        hosts=tuple(hosts),
        ceiling_host=ceiling_host.address,
        targets=pool_targets(params, hosts),
        warnings=tuple(host_warnings(hosts)),
    )


def _liner(out: TextIO) -> Callable[[str, object], None]:
    def line(label: str, value: object) -> None:
        out.write(f"  {label + ':':<22} {value}\n")

    return line


def _report(report: DoctorReport, out: TextIO, multi: MultiHostReport | None = None) -> None:
    line = _liner(out)
    out.write("mysqlpool doctor\n")
    line("server", report.server)
    if multi is not None:
        line(
            "examined",
            f"{multi.examined} (the first usable of {len(multi.hosts)} hosts; all of them below)",
        )
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
    if multi is not None:
        _report_hosts(multi, out)
    out.write("recommendations\n")
    line(
        "recycle",
        f'{report.recycle:g} s (what recycle="auto" picks for a session wait_timeout of '
        f"{report.wait_timeout_session} s)",
    )
    line("pool ceiling", f"pool_size + max_overflow <= {report.ceiling} per process")
    line("formula", report.formula)
    if multi is not None:
        reachable = sum(host.reachable for host in multi.hosts)
        line(
            "ceiling from",
            f"{multi.ceiling_host}, the smallest of {reachable} reachable "
            f"host{'' if reachable == 1 else 's'} (on failover one host may get "
            "every process's connections)",
        )


def _host_row(host: HostReport) -> str:
    if not host.reachable or host.state is None:
        return host.error or "unknown"
    details = [f"{host.version} ({host.flavour})", f"max_connections {host.max_connections}"]
    if host.round_trip_ms is not None:
        details.append(f"round trip {host.round_trip_ms:.3f} ms")
    if host.galera is not None:
        galera = host.galera
        details.append(
            f"Galera {galera.local_state_comment}, wsrep_ready {galera.wsrep_ready}, "
            f"cluster size {galera.cluster_size}, {galera.cluster_status}"
        )
    if host.replication is not None:
        details.append(host.replication.describe())
    if host.error is not None:
        details.append(f"failed: {host.error}")
    return f"{host.role:<7}  " + ", ".join(details)


def _report_hosts(multi: MultiHostReport, out: TextIO) -> None:
    line = _liner(out)
    out.write("hosts\n")
    width = max(len(host.address) for host in multi.hosts)
    for host in multi.hosts:
        out.write(f"  {host.address:<{width}}  {host.status:<11}  {_host_row(host)}\n")
    out.write("verdict\n")
    empty = {
        "primary": "none (no usable host is writable)",
        "replica": "none (no usable host is read-only)",
    }
    for target, addresses in multi.targets.items():
        text = ", ".join(addresses) or empty.get(target, "none")
        if target == "prefer_replica" and addresses and not multi.targets["replica"]:
            text += " (no replica: the primaries)"
        line(f"target={target}", text)
    for warning in multi.warnings:
        line("warning", warning)
    if not multi.warnings:
        line("warnings", "none")


def run_doctor(dsn: str | None = None, *, processes: int = 1, as_json: bool = False) -> int:
    """Examine the server and print the report on stdout; return the exit status.

    With several hosts in the DSN, every host is examined at once: the
    report is about the first usable one, followed by a line per host, the
    hosts a pool would use for each ``target``, and warnings (unreachable
    hosts, two writable servers that are not one Galera cluster, no writable
    server, stopped replication...). The ceiling comes from the host that
    allows the fewest connections. The JSON object gains ``hosts``,
    ``examined_host``, ``ceiling_host``, ``targets`` and ``warnings``.

    Args:
        dsn: the server; None resolves one as :func:`resolve_server` does.
        processes: how many processes will each run a pool against the
            server; the per-process ceiling divides by it.
        as_json: print one JSON object (:meth:`DoctorReport.to_json`, or
            :meth:`MultiHostReport.to_json`) instead of aligned text.

    Returns:
        0: the server answered every question; with several hosts, at least
        one did (and, on Galera, is ready).

    Raises:
        CommandError: a malformed DSN, no server, an unreachable server,
            rejected credentials, an unknown database, or a failure while
            examining it; with several hosts, no host usable (status 2;
            nothing printed on stdout).
    """
    with contextlib.ExitStack() as stack:
        server = resolve_server(dsn, stack, verbose=sys.stderr.isatty())
        if len(server.params.hosts) > 1:
            multi = asyncio.run(_examine_hosts(server, processes))
            report = multi.report
        else:
            multi = None
            report = asyncio.run(_examine(server, processes))
    if as_json:
        data = report.to_json() if multi is None else multi.to_json()
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        _report(report, sys.stdout, multi)
    return 0
