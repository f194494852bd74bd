"""Shared test fixtures: where the database server is, and loop hygiene.

This is the ONE place the tests find their server. ``mysql_dsn`` resolves it once
per session, as ``python -m mysqlpool demo`` does (``mysqlpool._discovery``):

1. the ``MYSQL_DSN`` environment variable, used as given;
2. the local default ``mysql://root@127.0.0.1:3306/test``, if something listens
   there and a real login plus ``SELECT 1`` succeeds;
3. a throw-away ``mariadb:10.11`` container through ``testcontainers`` (the
   ``testcontainers`` extra), if it is installed and a Docker engine answers;
   the container is stopped at the end of the session.

If none works, the database tests are skipped with one line saying what was
tried -- except under ``CI``, where the run stops with a failure instead, so a
CI run can never go green without having talked to a server.

The pools run on the driver ``--driver`` names (``aiomysql``, the default, or
``asyncmy``; also the ``MYSQLPOOL_TEST_DRIVER`` environment variable): the DSNs
the fixtures hand out carry its scheme (``tests/drivers.py``).

The autouse ``_fail_on_loop_errors`` guard turns anything an async test sends to
the event loop's exception handler ("Task exception was never retrieved",
"Task was destroyed but it is pending!", errors in callbacks...) into a test
failure instead of a log line nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomysql
import pymysql
import pytest
import pytest_asyncio

import drivers
from cluster import galera_cluster_fixture, primary_replica_fixture  # noqa: F401
from mysqlpool import Pool, parse_dsn
from mysqlpool._discovery import CommandError, resolve_server
from mysqlpool.testing import ManualClock
from privateserver import PrivateServer, missing_tools

#: The suite runs as an account of its own with this password, and the whole
#: run (every log line, captured output and failure text) is searched for it.
#: Named per run, so two runs on one server (CI and a developer's, or two
#: checkouts) never re-password or drop each other's login.
SUITE_USER = "mysqlpool_suite_" + secrets.token_hex(4)
SUITE_PASSWORD = "Suite-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def mysql_dsn() -> Iterator[str]:
    """DSN of a MySQL/MariaDB server the tests may use freely (see module docstring).

    Where the server's account may create users, the tests log in as
    ``SUITE_USER`` with ``SUITE_PASSWORD`` (all privileges, dropped at the
    end), so that a password is in play everywhere the suite looks.
    """
    with contextlib.ExitStack() as stack:
        try:
            server = resolve_server(None, stack, verbose=True)
        except CommandError as exc:
            message = f"no MySQL/MariaDB server for the tests: {exc}"
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.exit(message, returncode=1)
            pytest.skip(message)
        suite_dsn = _create_suite_account(server.dsn)
        try:
            yield drivers.on_driver(suite_dsn or server.dsn)
        finally:
            if suite_dsn:
                _drop_suite_account(server.dsn)


def _root(dsn: str) -> Any:
    params = parse_dsn(dsn)
    return pymysql.connect(
        host=params.host,
        port=params.port,
        user=params.user,
        password=params.password,
        database=params.db,
        connect_timeout=5,
    )


def _create_suite_account(dsn: str) -> str | None:
    """Create the suite's account; its DSN, or None if this login can't create users."""
    params = parse_dsn(dsn)
    hosts = ("127.0.0.1", "localhost") if params.host in ("127.0.0.1", "localhost") else ("%",)
    try:
        conn = _root(dsn)
        try:
            with conn.cursor() as cur:
                for host in hosts:
                    account = f"'{SUITE_USER}'@'{host}'"
                    cur.execute(f"CREATE USER IF NOT EXISTS {account}")
                    cur.execute(f"ALTER USER {account} IDENTIFIED BY %s", (SUITE_PASSWORD,))
                    cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION")
        finally:
            conn.close()
    except pymysql.MySQLError:
        return None
    query = dsn.partition("?")[2]
    host = f"[{params.host}]" if ":" in params.host else params.host
    suite = f"mysql://{SUITE_USER}:{SUITE_PASSWORD}@{host}:{params.port}/{params.db or ''}"
    return f"{suite}?{query}" if query else suite


def _drop_suite_account(dsn: str) -> None:
    params = parse_dsn(dsn)
    hosts = ("127.0.0.1", "localhost") if params.host in ("127.0.0.1", "localhost") else ("%",)
    with contextlib.suppress(pymysql.MySQLError):
        conn = _root(dsn)
        try:
            with conn.cursor() as cur:
                for host in hosts:
                    cur.execute(f"DROP USER IF EXISTS '{SUITE_USER}'@'{host}'")
        finally:
            conn.close()


class _PasswordWatch(logging.Handler):
    """Every record logged during the run, formatted as a reader would see it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if SUITE_PASSWORD in text:
            self.leaks.append(f"log {record.name}: {text[:200]}")


_watch = _PasswordWatch()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--driver",
        default=None,
        choices=drivers.DRIVERS,
        help=f"the driver the pools run on (default: ${drivers.ENV} or aiomysql)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--driver")
    if chosen is not None:
        drivers.choose(chosen)
    logging.getLogger().addHandler(_watch)
    logging.getLogger("mysqlpool").setLevel(logging.DEBUG)  # watch even the debug lines


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    texts = [report.longreprtext, *(content for _, content in report.sections)]
    if any(SUITE_PASSWORD in text for text in texts):
        _watch.leaks.append(f"output of {report.nodeid} ({report.when})")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _watch.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.section("the suite's password leaked", red=True)
            for leak in _watch.leaks:
                reporter.write_line(leak)


@pytest.fixture(scope="session")
def mysql_connect_kwargs(mysql_dsn: str) -> dict[str, Any]:
    """``mysql_dsn`` as keyword arguments for ``aiomysql.connect``."""
    return parse_dsn(mysql_dsn).connect_kwargs()


@pytest_asyncio.fixture
async def _loop_error_guard() -> AsyncIterator[None]:
    """Fail the test if the running loop's exception handler was called during it."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    reported: list[dict[str, Any]] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(context)
        if previous is None:
            loop.default_exception_handler(context)  # still log it
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)
    try:
        yield
        # Destroyed-while-pending tasks and never-retrieved exceptions are only
        # reported when the objects are collected: collect them now, while the
        # handler is still ours.
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    if reported:
        lines = "; ".join(str(ctx.get("message", ctx)) for ctx in reported)
        pytest.fail(f"event loop exception handler was called: {lines}", pytrace=False)


@pytest.fixture(autouse=True)
def _fail_on_loop_errors(request: pytest.FixtureRequest) -> None:
    """Apply ``_loop_error_guard`` to every async test (sync tests have no loop)."""
    if pytest_asyncio.is_async_test(request.node):
        request.getfixturevalue("_loop_error_guard")


PoolFactory = Callable[..., Awaitable[Pool]]


@pytest_asyncio.fixture
async def make_pool(mysql_dsn: str) -> AsyncIterator[PoolFactory]:
    """``await make_pool(**options)``: an opened Pool on the test server.

    Every pool it made is checked for consistent bookkeeping
    (``check_invariants``) and closed at the end of the test, so a test
    that fails half-way leaks nothing.
    """
    pools: list[tuple[Pool, Any]] = []

    async def factory(dsn: str | None = None, **options: Any) -> Pool:
        pool = Pool(dsn or mysql_dsn, **options)
        pools.append((pool, options.get("clock")))
        await pool.open()
        return pool

    yield factory
    for pool, _ in pools:
        pool.check_invariants()
    for pool, clock in pools:
        closing = asyncio.ensure_future(pool.close(timeout=5))
        if isinstance(clock, ManualClock):
            await asyncio.sleep(0)  # close() is waiting, on the pool's clock
            clock.advance(5)
        await closing
        # Whatever a test left checked out was terminated; nothing else is left.
        stats = pool.stats()
        assert (stats.idle, stats.opening, stats.waiting) == (0, 0, 0), stats
        pool.check_invariants()


@pytest_asyncio.fixture
async def admin(mysql_dsn: str) -> AsyncIterator[Admin]:
    """A side connection for what a test does to the server behind the pool's back."""
    conn = await aiomysql.connect(**parse_dsn(mysql_dsn).connect_kwargs())
    try:
        yield Admin(conn)
    finally:
        conn.close()


async def scalar(conn: Any, sql: str, *args: Any) -> Any:
    """The first column of the first row ``sql`` returns on ``conn`` (None: no row)."""
    async with conn.cursor() as cur:
        await cur.execute(sql, args or None)
        row = await cur.fetchone()
    return None if row is None else row[0]


class Admin:
    """Server-side actions on other connections (KILL, process list)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def scalar(self, sql: str, *args: Any) -> Any:
        return await scalar(self.conn, sql, *args)

    async def kill(self, conn: Any) -> None:
        """``KILL`` the server thread behind ``conn``, as an admin would."""
        await self.scalar(f"KILL {int(conn.thread_id())}")

    async def is_alive(self, thread_id: int) -> bool:
        """Whether the server still has a session with this thread id."""
        found = await self.scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", thread_id
        )
        return bool(found)


@pytest.fixture(scope="session")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    """A MariaDB of the tests' own (see privateserver.py), for faults that would
    harm the shared server: killed, stopped and restarted by the tests, which
    must leave it running. Removed at the end of the session."""
    problem = missing_tools()
    if problem is not None:
        pytest.skip(f"no private server: {problem}")
    server = PrivateServer(tmp_path_factory.mktemp("privateserver"))
    try:
        server.start()
        yield server
    finally:
        server.remove()


# Figures the fault tests measure (recovery times, errors by kind, deadline
# overruns...), printed as one table at the end of the run.
_FIGURES: list[tuple[str, str, str]] = []

Figure = Callable[[str, object], None]


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """``figure(name, value)``: report a measured figure in the run's summary table."""
    test = request.node.name

    def record(name: str, value: object) -> None:
        _FIGURES.append((test, name, str(value)))

    return record


def pytest_report_header(config: pytest.Config) -> str:
    return f"mysqlpool driver: {drivers.name()}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("figures measured by the fault tests")
    terminalreporter.write_line("| test | figure | value |")
    terminalreporter.write_line("|---|---|---|")
    for test, name, value in _FIGURES:
        terminalreporter.write_line(f"| {test} | {name} | {value} |")


@pytest_asyncio.fixture
async def databases(admin: Admin) -> AsyncIterator[tuple[str, str]]:
    """Two databases of the test's own (their names), dropped after it."""
    names = tuple(f"mysqlpool_db_{secrets.token_hex(3)}_{x}" for x in "ab")
    for name in names:
        await admin.scalar(f"CREATE DATABASE `{name}`")
    try:
        yield names[0], names[1]
    finally:
        for name in names:
            await admin.scalar(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def option_file(tmp_path: Path, databases: tuple[str, str]) -> str:
    """A my.cnf whose [client] section names the first database and latin1."""
    path = tmp_path / "my.cnf"
    path.write_text(f"[client]\ndatabase={databases[0]}\ndefault-character-set=latin1\n")
    return str(path)
