"""``python -m mysqlpool``: the demo end to end, and its one-line failures.

The end-to-end tests run the CLI in a subprocess, as a user would, so that
what reaches stderr (a traceback, a warning, a leaked password) is seen
exactly. The DSN-resolution tests run ``main()`` in process, where the local
default and the container can be pointed elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pymysql
import pytest

from mysqlpool import _demo, _discovery, parse_dsn
from mysqlpool.__main__ import main

UNREACHABLE_DSN = "mysql://root:s3cret@127.0.0.1:1/test"  # port 1: refused at once


def _run_cli(*args: str, env_dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MYSQL_DSN"}
    if env_dsn is not None:
        env["MYSQL_DSN"] = env_dsn
    # ResourceWarnings (an unclosed socket or connection) are hidden by
    # default; shown, they land on stderr, which the tests require to be clean.
    proc = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-m", "mysqlpool", *args],
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )
    # Decoded by hand: text mode would turn the progress bar's "\r" into "\n".
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def _assert_one_line_failure(
    proc: subprocess.CompletedProcess[str], status: int, secret: str
) -> str:
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert secret not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mysqlpool demo: ")
    return lines[0]


def _with_login(dsn: str, user: str, password: str) -> str:
    params = parse_dsn(dsn)
    host = f"[{params.host}]" if ":" in params.host else params.host
    return f"mysql://{user}:{password}@{host}:{params.port}/{params.db or 'test'}"


def test_demo_reports_throughput_waits_and_stats(mysql_dsn: str) -> None:
    proc = _run_cli("demo", mysql_dsn, "--handlers", "200", "--pool-size", "4")
    assert proc.returncode == 0, proc.stderr
    # stderr is a pipe here, so no progress bar, and nothing else belongs there.
    assert proc.stderr == ""
    out = proc.stdout
    assert re.search(r"^\s+completed:\s+200 of 200 handlers \(0 failed\)$", out, re.M), out
    assert re.search(r"^\s+throughput:\s+\d+ handlers/s$", out, re.M), out
    assert re.search(
        r"^\s+acquire wait:\s+p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$",
        out,
        re.M,
    ), out
    stats = dict(re.findall(r"^\s+(\w+):\s+(.*)$", out.split("pool stats\n", 1)[1], re.M))
    assert stats["acquires"] == "200"
    assert stats["timeouts"] == "0"
    assert stats["discarded"] == "0"
    assert stats["pool_size"] == "4"
    assert stats["max_overflow"] == "0"
    # max_overflow=0: never more connections than pool_size, and the burst
    # (200 handlers on 4 connections) made handlers wait.
    assert 1 <= int(stats["opened"]) <= 4
    assert stats["in_use"] == "0"
    assert float(stats["wait_time"].split()[0]) > 0


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
def test_demo_runs_on_the_driver_it_is_given(mysql_dsn: str, driver: str) -> None:
    proc = _run_cli("demo", mysql_dsn, "--handlers", "50", "--driver", driver)
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"^\s+driver:\s+{driver}$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\s+completed:\s+50 of 50 handlers", proc.stdout, re.M), proc.stdout


def test_demo_refuses_an_unknown_driver_before_connecting() -> None:
    proc = _run_cli("demo", "mysql://app:hunter22@127.0.0.1:1/x", "--driver", "mysqldb")
    assert proc.returncode == 2
    assert "invalid choice: 'mysqldb'" in proc.stderr
    assert "hunter22" not in proc.stderr


def test_demo_progress_bar_when_forced(mysql_dsn: str) -> None:
    proc = _run_cli("demo", mysql_dsn, "--handlers", "50", "--pool-size", "2", "--progress")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("\r[")
    assert proc.stderr.endswith("\n")
    assert proc.stderr.count("\n") == 1  # redrawn in place, not scrolled
    assert "50/50 handlers" in proc.stderr.rsplit("\r", 1)[1]


def test_unreachable_server_is_one_line(mysql_dsn: str) -> None:
    line = _assert_one_line_failure(_run_cli("demo", UNREACHABLE_DSN), 1, "s3cret")
    assert "mysql://root:***@127.0.0.1:1/test" in line
    assert "Connection refused" in line


def test_dsn_from_environment(mysql_dsn: str) -> None:
    line = _assert_one_line_failure(_run_cli("demo", env_dsn=UNREACHABLE_DSN), 1, "s3cret")
    assert "(MYSQL_DSN)" in line


def test_malformed_dsn_is_a_usage_error() -> None:
    proc = _run_cli("demo", "mysql://root:s3cret@host:notaport/db")
    line = _assert_one_line_failure(proc, 2, "s3cret")
    assert "port" in line


def test_rejected_login_is_one_line(mysql_dsn: str) -> None:
    # A user that does not exist: root may log in with any password through
    # unix_socket authentication on some servers.
    dsn = _with_login(mysql_dsn, "nosuchuser", "wrongpw")
    line = _assert_one_line_failure(_run_cli("demo", dsn), 1, "wrongpw")
    assert "[1045]" in line  # ER_ACCESS_DENIED_ERROR


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["demo", "--handlers", "0"]) == 2
    assert "--handlers: must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "doctor"])
def test_a_stray_argument_gets_the_command_s_own_usage(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "mysql://root@127.0.0.1/test", "extra"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: python -m mysqlpool {command} [-h]")
    assert f"python -m mysqlpool {command}: error: unrecognized arguments: extra" in err


def test_a_stray_dsn_is_not_echoed_with_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "mysql://root@h/test", "mysql://u:s3cret@h/db"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: <withheld" in err
    assert "s3cret" not in err


def _documented_exit_statuses() -> dict[tuple[str, str], int]:
    """docs/cli.md's exit-status table: (command, situation) -> status."""
    page = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
    table: dict[tuple[str, str], int] = {}
    for row in re.findall(r"^\| (\d+) \| (.*) \| (.*) \|$", page.read_text(), re.M):
        status, demo, doctor = int(row[0]), row[1], row[2]
        for command, text in (("demo", demo), ("doctor", doctor)):
            for situation in ("malformed DSN", "unreachable"):
                if situation in text:
                    table[(command, situation)] = status
    return table


@pytest.mark.parametrize("command", ["demo", "doctor"])
def test_the_documented_exit_statuses_hold(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    documented = _documented_exit_statuses()
    malformed = "mysql://root:s3cret@host:notaport/db"
    assert main([command, malformed]) == documented[(command, "malformed DSN")]
    assert main([command, UNREACHABLE_DSN]) == documented[(command, "unreachable")]
    assert "s3cret" not in capsys.readouterr().err


def test_no_server_anywhere_says_what_was_tried(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MYSQL_DSN", raising=False)
    monkeypatch.setattr(_discovery, "LOCAL_DSN", "mysql://root@127.0.0.1:1/test")
    monkeypatch.setitem(sys.modules, "testcontainers", None)  # import fails
    assert main(["demo", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "mysqlpool demo: no server: MYSQL_DSN unset; 127.0.0.1:1: connection refused; "
        "docker: testcontainers not installed\n"
    )


class _FakeContainer:
    fail_start: ClassVar[bool] = False
    instances: ClassVar[list[_FakeContainer]] = []  # replaced per test by the fixture

    def __init__(self, image: str, **kwargs: Any) -> None:
        self.image = image
        self.kwargs = kwargs
        self.stopped = False
        self.instances.append(self)

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("pull access denied")

    def get_container_host_ip(self) -> str:
        return "localhost"

    def get_exposed_port(self, port: int) -> str:
        return "32768"

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_testcontainers(monkeypatch: pytest.MonkeyPatch) -> type[_FakeContainer]:
    """No env DSN, no local server, and a testcontainers whose Docker "answers"."""
    monkeypatch.delenv("MYSQL_DSN", raising=False)
    monkeypatch.setattr(_discovery, "LOCAL_DSN", "mysql://root@127.0.0.1:1/test")
    monkeypatch.setattr(_discovery, "_docker_ping", lambda: None)
    module = types.ModuleType("testcontainers.community.mysql")
    module.MySqlContainer = _FakeContainer  # type: ignore[attr-defined]
    for name in ("testcontainers", "testcontainers.community"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "testcontainers.community.mysql", module)
    monkeypatch.setattr(_FakeContainer, "instances", [])
    return _FakeContainer


def test_container_is_used_then_stopped(fake_testcontainers: type[_FakeContainer]) -> None:
    with contextlib.ExitStack() as stack:
        server = _discovery.resolve_server(None, stack)
        [container] = fake_testcontainers.instances
        assert container.image == "mariadb:10.11"
        assert not container.stopped
        assert server.source == "container mariadb:10.11"
        assert str(server.params) == "mysql://root:***@localhost:32768/test"
        assert server.params.password == container.kwargs["password"]
    assert container.stopped


def test_container_that_fails_to_start_is_stopped(
    fake_testcontainers: type[_FakeContainer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_testcontainers, "fail_start", True)
    with contextlib.ExitStack() as stack, pytest.raises(_discovery.CommandError) as raised:
        _discovery.resolve_server(None, stack)
    assert raised.value.status == 1
    assert str(raised.value).endswith("docker: starting mariadb:10.11 failed (pull access denied)")
    [container] = fake_testcontainers.instances
    assert container.stopped


def test_driver_error_text_never_shows_the_password() -> None:
    params = parse_dsn("mysql://app:hunter22@db/shop")
    exc = pymysql.err.OperationalError(1045, "echoing hunter22 back")
    assert _discovery.describe_error(exc, params) == "echoing *** back [1045]"


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [_demo.percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert _demo.percentile([7.0], 50) == 7.0
    assert _demo.percentile([], 99) == 0.0
