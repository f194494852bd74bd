"""``python -m mysqlpool doctor``: what a server allows a pool, and what to configure.

One connection is opened (through the pool's own driver seam)
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
connections, since on failover one host may get all of them. What each host
is, the ceiling arithmetic and the verdict across hosts are
:mod:`mysqlpool._doctor_hosts`'s; this module opens the connections, examines
the server, and writes the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import pymysql

from ._aging import auto_recycle
from ._discovery import EXIT_USAGE, CommandError, Server, describe_error, resolve_server
from ._doctor_hosts import (
    HostReport,
    connection_ceiling,
    flavour_of,
    host_ceiling,
    host_warnings,
    pool_targets,
    read_host_facts,
    report_hosts,
)
from ._driver import Driver, driver_for
from ._driver_names import driver_errors
from ._params import ConnectParams

__all__ = ["DoctorReport", "MultiHostReport", "run_doctor"]

#: COM_PINGs sent to measure the round trip; the median is reported.
PINGS = 20

# As in the demo: a host that drops packets must not hang the doctor for the
# OS's TCP timeout; a DSN's own connect_timeout wins.
_DEFAULT_CONNECT_TIMEOUT = 10.0
# Everything after the login (a few queries, the pings, the reset) together.
_CHECK_TIMEOUT = 30.0

# Failures caused by the server or the network, reported in one line; any
# other exception is a bug here and keeps its traceback.
def _operational_errors() -> tuple[type[BaseException], ...]:
    return (*driver_errors(), OSError, asyncio.TimeoutError)


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
    #: The driver the doctor connected with (the pool's, for this DSN).
    driver: str = "aiomysql"

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
            "driver": self.driver,
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


async def _row(conn: Any, sql: str) -> tuple[Any, ...]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        row = await cur.fetchone()
    if row is None:
        raise pymysql.err.InternalError(f"no row for {sql!r}")
    return tuple(row)


async def _try_reset(driver: Driver, conn: Any) -> str | None:
    """Send COM_RESET_CONNECTION; None if the server answered OK, else its error."""
    try:
        await driver.reset_connection(conn)
    except driver_errors() as exc:
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


async def _ask(driver: Driver, conn: Any) -> _Facts:
    """Query ``conn``'s server for every fact; COM_RESET_CONNECTION comes last."""
    version, wait_session, wait_global, interactive, max_connections, max_user = await _row(
        conn,
        "SELECT VERSION(), @@SESSION.wait_timeout, @@GLOBAL.wait_timeout, "
        "@@SESSION.interactive_timeout, @@GLOBAL.max_connections, "
        "@@SESSION.max_user_connections",
    )
    threads = await driver.show_values(conn, "SHOW GLOBAL STATUS LIKE 'Threads_connected'")
    cipher = await driver.show_values(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    round_trips: list[float] = []
    for _ in range(PINGS):
        started = time.perf_counter()
        await driver.ping(conn)
        round_trips.append(time.perf_counter() - started)
    # Last: a reset returns the session variables read above to their
    # global values.
    reset_error = await _try_reset(driver, conn)
    return _Facts(
        version=str(version),
        wait_timeout_session=int(wait_session),
        wait_timeout_global=int(wait_global),
        interactive_timeout=int(interactive),
        max_connections=int(max_connections),
        max_user_connections=int(max_user),
        threads_connected=int(threads.get("threads_connected") or 0),
        tls_cipher=cipher.get("ssl_cipher") or None,
        reset_error=reset_error,
        round_trips=round_trips,
    )


def _from_facts(
    server: Server, facts: _Facts, processes: int, ceiling: tuple[int, int, str] | None = None
) -> DoctorReport:
    """The report on ``facts``; ``ceiling`` (as :func:`connection_ceiling`
    returns it) when it comes from other numbers than these facts'."""
    if ceiling is None:
        ceiling = connection_ceiling(facts.max_connections, facts.max_user_connections, processes)
    per_process, reserve, formula = ceiling
    return DoctorReport(
        server=str(server),
        driver=server.params.driver,
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
    driver = driver_for(params)
    try:
        conn = await driver.connect(params, None)
    except _operational_errors() as exc:
        raise CommandError(f"{server}: {describe_error(exc, params)}", EXIT_USAGE) from None
    graceful = False
    try:
        facts = await asyncio.wait_for(_ask(driver, conn), _CHECK_TIMEOUT)
        graceful = True
    except _operational_errors() as exc:
        raise CommandError(f"{server}: {_why(exc, params, _CHECK_TIMEOUT)}", EXIT_USAGE) from None
    finally:
        driver.close(conn, graceful=graceful)
    return _from_facts(server, facts, processes)


def _why(exc: BaseException, params: ConnectParams, timeout: float) -> str:
    """One line for an operational failure; a timeout says how long was waited."""
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {timeout:g} s"
    return describe_error(exc, params)


# ------------------------------------------------------------- several hosts


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


async def _probe_host(
    params: ConnectParams, host: str, port: int
) -> tuple[HostReport, _Facts | None]:
    """Everything about one host; its full facts too when it is usable.

    The login and the ``SHOW`` statements are each bounded by the connect
    timeout, the full examination by :data:`_CHECK_TIMEOUT`. A failure is
    part of the report, never raised.
    """
    one, timeout = _with_timeout(params.for_host(host, port))
    driver = driver_for(one)
    try:
        # The driver's connect_timeout covers the TCP connect only; a
        # server that accepts but never greets must not hang the doctor.
        conn = await asyncio.wait_for(driver.connect(one, None), timeout)
    except _operational_errors() as exc:
        return HostReport(host, port, reachable=False, error=_why(exc, one, timeout)), None
    graceful = False
    try:
        try:
            found = await asyncio.wait_for(read_host_facts(driver, conn, host, port), timeout)
        except _operational_errors() as exc:
            return HostReport(host, port, reachable=True, error=_why(exc, one, timeout)), None
        if found.state is not None and not found.state.ready:
            # Anything but SHOW fails with 1047 on such a node.
            graceful = True
            return found, None
        try:
            facts = await asyncio.wait_for(_ask(driver, conn), _CHECK_TIMEOUT)
        except _operational_errors() as exc:
            return dataclasses.replace(found, error=_why(exc, one, _CHECK_TIMEOUT)), None
        graceful = True
        examined = dataclasses.replace(
            found,
            wait_timeout_session=facts.wait_timeout_session,
            round_trip_ms=_median_ms(facts.round_trips),
        )
        return examined, facts
    finally:
        driver.close(conn, graceful=graceful)


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
        report=_from_facts(server, facts, processes, numbers),
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
    line("driver", report.driver)
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
        report_hosts(out, line, multi.hosts, multi.targets, multi.warnings)
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


def run_doctor(
    dsn: str | None = None,
    *,
    processes: int = 1,
    as_json: bool = False,
    driver: str | None = None,
) -> int:
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
        driver: ``"aiomysql"`` or ``"asyncmy"``; None: the DSN's scheme says.

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
        server = resolve_server(dsn, stack, verbose=sys.stderr.isatty()).on_driver(driver)
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
