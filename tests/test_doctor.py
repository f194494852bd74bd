"""``python -m mysqlpool doctor``: its report on the real server, and its one-line failures.

Reports and usage errors run ``main()`` in process; the failures run the CLI
in a subprocess, as a user would, so that anything reaching stderr (a
traceback, a ResourceWarning, a leaked password) is seen exactly.

Multi-host DSNs are made of the test server and ports where nothing listens
(or where a socket listens but never answers); the verdict rules are checked
on hand-made host reports. One test, marked below, runs on the Galera
cluster of ``cluster.py`` (its ``galera_cluster`` fixture, which conftest.py
imports so that every module shares one cluster).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from cluster import GaleraCluster
from mysqlpool import parse_dsn
from mysqlpool.__main__ import main
from mysqlpool._aging import auto_recycle
from mysqlpool._doctor_hosts import (
    RESERVE_MIN,
    GaleraFacts,
    HostReport,
    ReplicationFacts,
    connection_ceiling,
    host_ceiling,
    host_warnings,
    pool_targets,
)
from mysqlpool._server_state import ServerState
from privateserver import free_port

SECRET = "s3cretpw"

# Every fact of the text report, by its label.
TEXT_LABELS = (
    "server",
    "driver",
    "version",
    "wait_timeout",
    "interactive_timeout",
    "max_connections",
    "Threads_connected",
    "max_user_connections",
    "TLS",
    "COM_RESET_CONNECTION",
    "round trip",
    "recycle",
    "pool ceiling",
    "formula",
)

JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "server": str,
    "driver": str,
    "version": str,
    "flavour": str,
    "wait_timeout_session": int,
    "wait_timeout_global": int,
    "interactive_timeout": int,
    "max_connections": int,
    "threads_connected": int,
    "max_user_connections": int,
    "tls": bool,
    "tls_cipher": (str, type(None)),
    "reset_connection": bool,
    "reset_connection_error": (str, type(None)),
    "round_trip_ms": float,
    "pings": int,
    "recommended_recycle": float,
    "processes": int,
    "reserve": int,
    "max_connections_per_process": int,
    "formula": str,
}


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MYSQL_DSN"}
    return subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-m", "mysqlpool", "doctor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def _doctor_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["doctor", *args, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1  # one JSON object on one line
    report = json.loads(captured.out)
    assert isinstance(report, dict)
    return report


def _assert_one_line_failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert SECRET not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mysqlpool doctor: ")
    return lines[0]


def _host_port(dsn: str) -> str:
    params = parse_dsn(dsn)
    host = f"[{params.host}]" if ":" in params.host else params.host
    return f"{host}:{params.port}"


def test_text_report_names_every_fact(mysql_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", mysql_dsn]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out
    facts = dict(re.findall(r"^  ([\w ]+):\s+(.*)$", out, re.M))
    assert set(TEXT_LABELS) <= set(facts), out
    assert re.fullmatch(r"\S+ \((MariaDB|MySQL)\)", facts["version"]), facts["version"]
    assert SECRET not in out
    assert "(command line)" in facts["server"]
    timeouts = re.fullmatch(r"(\d+) s session, \d+ s global", facts["wait_timeout"])
    assert timeouts is not None, facts["wait_timeout"]
    session = int(timeouts.group(1))
    recycle = float(facts["recycle"].split(" s ", 1)[0])
    assert 0 < recycle < session
    assert recycle == auto_recycle(session)
    assert int(facts["Threads_connected"].split()[0]) >= 1  # the doctor's own
    assert re.fullmatch(r"[\d.]+ ms \(median of 20 COM_PINGs\)", facts["round trip"])
    # Every server this project supports (MariaDB >= 10.2, MySQL >= 5.7.3) has it.
    assert facts["COM_RESET_CONNECTION"] == "works"
    assert re.fullmatch(r"pool_size \+ max_overflow <= \d+ per process", facts["pool ceiling"])
    assert facts["formula"].startswith("(max_connections ")
    assert facts["formula"].endswith("// 1 process = " + facts["pool ceiling"].split()[4])


def test_json_report_has_stable_keys_and_sane_values(
    mysql_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _doctor_json(capsys, mysql_dsn)
    assert set(report) == set(JSON_TYPES)
    for key, types in JSON_TYPES.items():
        assert isinstance(report[key], types), (key, report[key])
    assert report["flavour"] in ("MariaDB", "MySQL")
    assert (report["flavour"] == "MariaDB") == ("mariadb" in report["version"].lower())
    assert 0 < report["recommended_recycle"] < report["wait_timeout_session"]
    assert report["threads_connected"] >= 1
    assert report["max_connections"] >= 1
    assert 0 < report["round_trip_ms"] < 1000
    assert report["pings"] == 20
    assert report["reset_connection"] is True
    assert report["reset_connection_error"] is None
    assert report["tls"] is (report["tls_cipher"] is not None)
    assert report["processes"] == 1
    assert report["reserve"] >= RESERVE_MIN
    assert 1 <= report["max_connections_per_process"] < report["max_connections"]
    assert report["max_connections_per_process"] <= report["max_connections"] - report["reserve"]
    assert SECRET not in json.dumps(report)


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
def test_the_report_names_the_driver_the_doctor_used(
    mysql_dsn: str, capsys: pytest.CaptureFixture[str], driver: str
) -> None:
    report = _doctor_json(capsys, mysql_dsn, "--driver", driver)
    assert report["driver"] == driver
    assert report["reset_connection"] is True  # COM_RESET_CONNECTION through that driver
    expected_scheme = "mysql://" if driver == "aiomysql" else "mysql+asyncmy://"
    assert report["server"].startswith(expected_scheme)


def test_more_processes_lower_the_ceiling(
    mysql_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _doctor_json(capsys, mysql_dsn, "--processes", "1")
    four = _doctor_json(capsys, mysql_dsn, "--processes", "4")
    assert four["processes"] == 4
    assert four["max_connections_per_process"] < one["max_connections_per_process"]
    assert four["max_connections_per_process"] * 4 <= one["max_connections_per_process"]
    assert "// 4 processes = " in four["formula"]


def test_unreachable_server_is_one_line() -> None:
    line = _assert_one_line_failure(_run_cli(f"mysql://root:{SECRET}@127.0.0.1:1/test"))
    assert "mysql://root:***@127.0.0.1:1/test" in line
    assert "Connection refused" in line


def test_rejected_login_is_one_line(mysql_dsn: str) -> None:
    # A user that does not exist: root may log in with any password through
    # unix_socket authentication on some servers.
    dsn = f"mysql://nosuchuser:{SECRET}@{_host_port(mysql_dsn)}/test"
    line = _assert_one_line_failure(_run_cli(dsn))
    assert "[1045]" in line  # ER_ACCESS_DENIED_ERROR
    assert "mysql://nosuchuser:***@" in line


def test_unknown_database_is_one_line(mysql_dsn: str) -> None:
    # The test server's own login, so only the database is wrong.
    dsn = urlunsplit(urlsplit(mysql_dsn)._replace(path="/no_such_db_mp"))
    line = _assert_one_line_failure(_run_cli(dsn))
    assert "[1049]" in line  # ER_BAD_DB_ERROR
    assert "no_such_db_mp" in line


def test_processes_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--processes", "0"]) == 2
    assert "--processes: must be at least 1" in capsys.readouterr().err


def test_ceiling_formula() -> None:
    # 10% reserve, rounded up.
    assert connection_ceiling(151, 0, 1)[:2] == (135, 16)
    assert connection_ceiling(151, 0, 4)[0] == 33
    # A small server still keeps RESERVE_MIN back.
    assert connection_ceiling(20, 0, 1)[:2] == (20 - RESERVE_MIN, RESERVE_MIN)
    # A per-account limit caps all processes together.
    ceiling, _, formula = connection_ceiling(1000, 50, 2)
    assert ceiling == 25
    assert formula == "max_user_connections 50 // 2 processes = 25"
    # Never below one connection, and the formula says so.
    ceiling, _, formula = connection_ceiling(10, 0, 8)
    assert ceiling == 1
    assert "too small" in formula
    with pytest.raises(ValueError, match="processes"):
        connection_ceiling(100, 0, 0)


# ------------------------------------------------------------- several hosts

HOST_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "address": str,
    "host": str,
    "port": int,
    "status": str,
    "reachable": bool,
    "usable": bool,
    "error": (str, type(None)),
    "version": (str, type(None)),
    "flavour": (str, type(None)),
    "role": (str, type(None)),
    "read_only": (bool, type(None)),
    "max_connections": (int, type(None)),
    "max_user_connections": (int, type(None)),
    "wait_timeout_session": (int, type(None)),
    "round_trip_ms": (float, type(None)),
    "galera": (dict, type(None)),
    "replication": (dict, type(None)),
}
MULTI_JSON_KEYS = {"hosts", "examined_host", "ceiling_host", "targets", "warnings"}


def _with_hosts(dsn: str, *hosts: str, query: str = "") -> str:
    """``dsn`` with ``hosts`` ("host:port") after its own, and ``query`` added."""
    parts = urlsplit(dsn)
    netloc = ",".join((parts.netloc, *hosts))
    joined = "&".join(q for q in (parts.query, query) if q)
    return urlunsplit(parts._replace(netloc=netloc, query=joined))


def _password(dsn: str) -> str | None:
    password = parse_dsn(dsn).password
    return password if isinstance(password, str) and password else None


def _section(out: str, title: str) -> list[str]:
    """The indented lines under ``title`` in the text report."""
    lines = out.split(f"\n{title}\n", 1)[1].splitlines()
    section = []
    for line in lines:
        if not line.startswith("  "):
            break
        section.append(line)
    return section


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) but never speaks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port: int = sock.getsockname()[1]
        yield port


def test_multi_host_text_report(mysql_dsn: str) -> None:
    live = _host_port(mysql_dsn)
    dead = f"127.0.0.1:{free_port()}"
    proc = _run_cli(_with_hosts(mysql_dsn, dead))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no traceback, no ResourceWarning
    out = proc.stdout
    password = _password(mysql_dsn)
    assert password is None or password not in out
    # The full report, about the live host, as for a single host...
    facts = dict(re.findall(r"^  ([\w ]+):\s+(.*)$", out, re.M))
    assert set(TEXT_LABELS) <= set(facts), out
    assert facts["examined"].startswith(f"{live} (the first usable of 2 hosts")
    assert facts["ceiling from"].startswith(f"{live}, the smallest of 1 reachable host ")
    # ...then one line per host, in the DSN's order.
    live_row, dead_row = _section(out, "hosts")
    assert re.fullmatch(
        rf"  {re.escape(live)} +reachable +primary +\S+ \((MariaDB|MySQL)\), "
        r"max_connections \d+, round trip [\d.]+ ms",
        live_row,
    ), live_row
    assert re.fullmatch(rf"  {re.escape(dead)} +unreachable +.*Connection refused.*", dead_row)
    verdict = _section(out, "verdict")
    assert f"  target=primary:        {live}" in verdict
    assert "  target=replica:        none (no usable host is read-only)" in verdict
    assert (
        f"  warning:               1 of 2 hosts is not usable now: {dead} (unreachable)" in verdict
    )
    assert not any("writable" in line for line in verdict if "warning" in line)


def test_multi_host_json_lists_every_host(
    mysql_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live = _host_port(mysql_dsn)
    dead_port = free_port()
    report = _doctor_json(capsys, _with_hosts(mysql_dsn, f"127.0.0.1:{dead_port}"))
    # The single-host keys, unchanged, plus the multi-host ones.
    assert set(report) == set(JSON_TYPES) | MULTI_JSON_KEYS
    for key, types in JSON_TYPES.items():
        assert isinstance(report[key], types), (key, report[key])
    first, second = report["hosts"]
    for host in (first, second):
        assert set(host) == set(HOST_JSON_TYPES)
        for key, types in HOST_JSON_TYPES.items():
            assert isinstance(host[key], types), (key, host[key])
    assert first["address"] == live
    assert first["status"] == "reachable"
    assert first["reachable"] is first["usable"] is True
    assert first["error"] is None
    assert first["role"] == "primary"
    assert first["read_only"] is False
    assert first["max_connections"] == report["max_connections"]
    assert first["version"] == report["version"]
    assert first["galera"] is None
    assert first["replication"] is None
    assert second == {
        **second,
        "address": f"127.0.0.1:{dead_port}",
        "host": "127.0.0.1",
        "port": dead_port,
        "status": "unreachable",
        "reachable": False,
        "usable": False,
        "version": None,
        "role": None,
        "max_connections": None,
    }
    assert "Connection refused" in second["error"]
    assert "\n" not in second["error"]
    assert report["examined_host"] == report["ceiling_host"] == live
    assert (
        report["max_connections_per_process"]
        == connection_ceiling(first["max_connections"], first["max_user_connections"], 1)[0]
    )
    assert report["targets"] == {
        "any": [live],
        "primary": [live],
        "replica": [],
        "prefer_replica": [live],
    }
    assert report["warnings"] == [
        f"1 of 2 hosts is not usable now: 127.0.0.1:{dead_port} (unreachable)"
    ]
    password = _password(mysql_dsn)
    assert password is None or password not in json.dumps(report)


def test_silent_host_is_bounded_by_the_connect_timeout(
    mysql_dsn: str, silent_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # The silent host comes first: the report is still about the live one.
    dsn = _with_hosts(mysql_dsn, query="connect_timeout=1")
    parts = urlsplit(dsn)
    userinfo, at, live = parts.netloc.rpartition("@")
    dsn = urlunsplit(parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{silent_port},{live}"))
    started = time.monotonic()
    report = _doctor_json(capsys, dsn)
    assert time.monotonic() - started < 5
    silent, answered = report["hosts"]
    assert silent["status"] == "unreachable"
    assert silent["error"] == "no answer within 1 s"
    assert answered["usable"] is True
    assert report["examined_host"] == answered["address"]


def test_no_host_reachable_is_one_line() -> None:
    first, second = free_port(), free_port()
    proc = _run_cli(f"mysql://root:{SECRET}@127.0.0.1:{first},127.0.0.1:{second}/test")
    line = _assert_one_line_failure(proc)
    assert f"mysql://root:***@127.0.0.1:{first},127.0.0.1:{second}/test" in line
    assert "no host is reachable: " in line
    assert f"127.0.0.1:{first}: " in line
    assert f"127.0.0.1:{second}: " in line
    assert line.count("Connection refused") == 2


# Hand-made hosts for the verdict rules.


def _host(
    port: int,
    *,
    read_only: bool = False,
    max_connections: int = 151,
    galera: str | None = None,
    ready: bool = True,
    replication: ReplicationFacts | None = None,
    reachable: bool = True,
) -> HostReport:
    if not reachable:
        return HostReport("10.0.0.1", port, reachable=False, error="refused")
    comment = "Synced" if ready else "Donor/Desynced"
    return HostReport(
        "10.0.0.1",
        port,
        reachable=True,
        state=ServerState(read_only, None if galera is None else comment, ready),
        version="10.11.6-MariaDB",
        max_connections=max_connections,
        max_user_connections=0,
        wait_timeout_session=28800,
        galera=None if galera is None else GaleraFacts(comment, "ON", 3, "Primary", galera),
        replication=replication,
    )


def test_ceiling_comes_from_the_smallest_reachable_host() -> None:
    hosts = [_host(1, max_connections=500), _host(2, max_connections=60), _host(3, reachable=False)]
    found = host_ceiling(hosts, 2)
    assert found is not None
    host, ceiling = found
    assert host.address == "10.0.0.1:2"
    assert ceiling == connection_ceiling(60, 0, 2)
    assert host_ceiling([_host(1, reachable=False)], 1) is None


def test_targets_are_chosen_as_the_pool_does() -> None:
    params = parse_dsn("mysql://u@10.0.0.1:1,10.0.0.1:2,10.0.0.1:3,10.0.0.1:4/db")
    hosts = [
        _host(1),
        _host(2, read_only=True, replication=ReplicationFacts("running", "Yes", "Yes", 0)),
        _host(3, galera="uuid", ready=False),
        _host(4, reachable=False),
    ]
    assert pool_targets(params, hosts) == {
        "any": ["10.0.0.1:1", "10.0.0.1:2"],
        "primary": ["10.0.0.1:1"],
        "replica": ["10.0.0.1:2"],
        "prefer_replica": ["10.0.0.1:2"],
    }
    assert hosts[2].status == "not ready"
    assert hosts[2].why_not_usable == "Galera node not ready (Donor/Desynced)"


def test_warnings_for_writable_hosts() -> None:
    def warns(hosts: list[HostReport], text: str) -> bool:
        return any(text in warning for warning in host_warnings(hosts))

    split = "2 hosts are primaries (writable) but not nodes of one Galera cluster"
    assert warns([_host(1), _host(2)], split)
    assert not warns([_host(1, galera="a"), _host(2, galera="a")], split)
    assert warns([_host(1, galera="a"), _host(2, galera="b")], split)
    assert warns([_host(1, galera="a"), _host(2)], split)
    assert not warns([_host(1), _host(2, read_only=True)], split)
    # Not writable at all.
    replica = _host(1, read_only=True, replication=ReplicationFacts("running", "Yes", "Yes", 0))
    assert warns([replica, _host(2, reachable=False)], "no host is writable")
    assert not warns([replica, _host(2)], "no host is writable")
    assert host_warnings([_host(1), replica]) == []


def test_warnings_for_replication_and_unusable_hosts() -> None:
    stopped = ReplicationFacts("stopped", "No", "Yes", None, "error connecting to master")
    hosts = [
        _host(1, galera="a"),
        _host(2, read_only=True, replication=stopped),
        _host(3, read_only=True, replication=ReplicationFacts("unknown", error="denied [1227]")),
        _host(4, galera="a", ready=False),
    ]
    assert host_warnings(hosts) == [
        "1 of 4 hosts is not usable now: 10.0.0.1:4 (not ready: Galera Donor/Desynced)",
        "10.0.0.1:2: read-only, replication stopped (Slave_IO_Running No, "
        "Slave_SQL_Running Yes): error connecting to master",
    ]


# ----------------------------------------------- Galera (cluster.py's fixture)


@pytest.mark.slow
@pytest.mark.timeout(240)  # the session fixture starts three nodes first
def test_galera_cluster_hosts(
    galera_cluster: GaleraCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """GALERA: the only doctor test on a real cluster (cluster.py's fixture)."""
    cluster = galera_cluster
    addresses = [f"127.0.0.1:{port}" for port in cluster.ports]
    report = _doctor_json(capsys, cluster.dsn)
    assert [host["address"] for host in report["hosts"]] == addresses
    for host in report["hosts"]:
        assert host["usable"] is True
        assert host["role"] == "primary"
        assert host["galera"] == {
            **host["galera"],
            "wsrep_local_state_comment": "Synced",
            "wsrep_ready": "ON",
            "wsrep_cluster_size": 3,
            "wsrep_cluster_status": "Primary",
        }
    # Three writable nodes of one cluster: no split-brain warning.
    assert report["warnings"] == []
    assert report["targets"]["primary"] == addresses
    # A desynced node is reachable but not used.
    cluster.desync(0, True)
    try:
        report = _doctor_json(capsys, cluster.dsn)
    finally:
        cluster.desync(0, False)
        cluster.healthy()
    first = report["hosts"][0]
    assert first["status"] == "not ready"
    assert first["galera"]["wsrep_local_state_comment"] == "Donor/Desynced"
    assert report["examined_host"] == addresses[1]
    assert report["targets"]["any"] == addresses[1:]
