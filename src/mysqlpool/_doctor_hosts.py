"""The servers behind a DSN as the doctor sees them, and its verdict across several.

What one server allows each process (:func:`connection_ceiling`, the doctor's
recommendation for any DSN) and its flavour. For a DSN with several hosts,
what each host is, read with ``SHOW`` statements only (which a Galera node
that isn't ready still answers): its role (``@@read_only``), version and
connection limits, on Galera its ``wsrep_*`` state, for a replica whether
replication runs (:func:`read_host_facts`). Then the verdict across the
hosts: the hosts a pool would use for each ``target``
(:func:`pool_targets`), the host whose limits set the ceiling
(:func:`host_ceiling`), what looks wrong (:func:`host_warnings`), and the
``hosts`` and ``verdict`` sections of the text report (:func:`report_hosts`).

Opening the connections and the full examination of the first usable host
are :mod:`mysqlpool._doctor`'s, which imports this module (never the other
way round).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ._aging import auto_recycle
from ._discovery import describe_error
from ._driver import Driver
from ._driver_names import driver_errors
from ._hosts import TARGETS, HostSet
from ._params import ConnectParams
from ._server_state import ServerState, read_server_state

__all__ = [
    "RESERVE_FRACTION",
    "RESERVE_MIN",
    "GaleraFacts",
    "HostReport",
    "ReplicationFacts",
    "connection_ceiling",
    "flavour_of",
    "host_ceiling",
    "host_warnings",
    "pool_targets",
    "read_host_facts",
    "report_hosts",
]

# ---------------------------------------------------- what one server allows

#: Share of ``max_connections`` left for administrators and other clients...
RESERVE_FRACTION = 0.10
#: ...and the fewest connections left for them, however small the server.
RESERVE_MIN = 5


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


# --------------------------------------------------------- what each host is


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


_REPLICATION_COLUMNS = {
    # MySQL 8.0.22+'s SHOW REPLICA STATUS renames them; MariaDB keeps "Slave".
    "io": ("Slave_IO_Running", "Replica_IO_Running"),
    "sql": ("Slave_SQL_Running", "Replica_SQL_Running"),
    "lag": ("Seconds_Behind_Master", "Seconds_Behind_Source"),
    "io_error": ("Last_IO_Error",),
    "sql_error": ("Last_SQL_Error",),
}
_ER_PARSE_ERROR = 1064


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
        except driver_errors() as exc:
            if not (exc.args and exc.args[0] == _ER_PARSE_ERROR):
                raise
            channels = await _table(conn, "SHOW SLAVE STATUS")
    except driver_errors() as exc:
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


async def read_host_facts(driver: Driver, conn: Any, host: str, port: int) -> HostReport:
    """Role, version, limits, Galera and replication state: ``SHOW`` statements
    only, which a Galera node that isn't ready still answers."""
    state = await read_server_state(driver, conn)
    variables = await driver.show_values(
        conn,
        "SHOW SESSION VARIABLES WHERE Variable_name IN "
        "('version', 'max_connections', 'max_user_connections')",
    )
    galera = None
    if state.galera_state is not None:
        status = await driver.show_values(
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


# -------------------------------------------------- the verdict across hosts


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
            f'wait_timeout differs between hosts ({listed}): recycle="auto" keeps below '
            f"the lowest ({auto_recycle(min(timeouts.values())):g} s), so connections "
            "to the others are recycled sooner than they need be"
        )
    return warnings


# ---------------------------------------------------------------------- text


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


def report_hosts(
    out: TextIO,
    line: Callable[[str, object], None],
    hosts: Sequence[HostReport],
    targets: dict[str, list[str]],
    warnings: Sequence[str],
) -> None:
    """The ``hosts`` and ``verdict`` sections of the text report; ``line``
    writes one ``label: value`` line in the report's layout."""
    out.write("hosts\n")
    width = max(len(host.address) for host in hosts)
    for host in hosts:
        out.write(f"  {host.address:<{width}}  {host.status:<11}  {_host_row(host)}\n")
    out.write("verdict\n")
    empty = {
        "primary": "none (no usable host is writable)",
        "replica": "none (no usable host is read-only)",
    }
    for target, addresses in targets.items():
        text = ", ".join(addresses) or empty.get(target, "none")
        if target == "prefer_replica" and addresses and not targets["replica"]:
            text += " (no replica: the primaries)"
        line(f"target={target}", text)
    for warning in warnings:
        line("warning", warning)
    if not warnings:
        line("warnings", "none")
