"""``python -m mysqlpool doctor``: its report on the real server, and its one-line failures.

Reports and usage errors run ``main()`` in process; the failures run the CLI
in a subprocess, as a user would, so that anything reaching stderr (a
traceback, a ResourceWarning, a leaked password) is seen exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from mysqlpool import parse_dsn
from mysqlpool.__main__ import main
from mysqlpool._doctor import RESERVE_MIN, connection_ceiling
from mysqlpool._pool import auto_recycle

SECRET = "s3cretpw"

# Every fact of the text report, by its label.
TEXT_LABELS = (
    "server",
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
