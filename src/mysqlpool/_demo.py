"""``python -m mysqlpool demo``: a burst of simulated web handlers through one pool.

Every handler does what a request handler in a web application does with a
pool: acquire, run one short query, release. Many more handlers than
connections run at once, so most of them queue in ``acquire()``; the report
shows how long they waited and what the pool did meanwhile.

Also here, for every command that needs a server: where the server is
(:func:`resolve_server`) and the one-line error a command reports
(:class:`CommandError`, :func:`describe_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

import pymysql

from ._dsn import ConnectParams, parse_dsn
from ._pool import Pool
from ._stats import PoolStats
from .errors import PoolError

__all__ = [
    "CONTAINER_IMAGE",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "LOCAL_DSN",
    "CommandError",
    "DemoResult",
    "Server",
    "describe_error",
    "percentile",
    "resolve_server",
    "run_demo",
]

#: Exit status for "it did not work": no server, a driver error, failed handlers.
EXIT_FAILURE = 1
#: Exit status for "it was asked wrongly": a malformed DSN or option (argparse's too).
EXIT_USAGE = 2

#: Tried when neither a DSN argument nor ``MYSQL_DSN`` is given.
LOCAL_DSN = "mysql://root@127.0.0.1:3306/test"
#: Started through testcontainers when nothing else answers.
CONTAINER_IMAGE = "mariadb:10.11"

#: What each handler runs: its own id comes back, so a mixed-up reply is
#: caught; the sleep stands for the server-side work of a real request.
HANDLER_SQL = "SELECT %s, SLEEP(0.001)"

# Without a connect_timeout a host that drops packets would keep the demo
# waiting for the OS's TCP timeout (minutes); a DSN's own value wins.
_DEFAULT_CONNECT_TIMEOUT = 10.0
# The local default is only a guess: give up on it quickly.
_PROBE_TIMEOUT = 2.0
# Handlers still holding a connection after this long at shutdown are cut off.
_CLOSE_TIMEOUT = 5.0
_PROGRESS_INTERVAL = 0.1
_BAR_WIDTH = 30

# What a handler or the set-up may raise because of the server or the pool,
# as opposed to a bug in this module, which should show its traceback.
_OPERATIONAL_ERRORS = (pymysql.MySQLError, PoolError, OSError, asyncio.TimeoutError)


class CommandError(Exception):
    """A failure a command reports as one line on stderr, with an exit status.

    The message must already be safe to show: no password, no newline.
    """

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Server:
    """A server a command talks to, and where its DSN came from."""

    params: ConnectParams
    #: "command line", "MYSQL_DSN", "local default" or "container mariadb:10.11".
    source: str

    def __str__(self) -> str:
        return f"{self.params} ({self.source})"


def describe_error(exc: BaseException, params: ConnectParams | None = None) -> str:
    """One line for a driver, pool or socket error, without the password.

    PyMySQL errors show as ``message [code]``. Driver messages do not quote
    passwords, but the password is masked anyway: the message goes to a
    terminal or a CI log, where a leak can't be taken back.
    """
    args = exc.args
    if isinstance(exc, pymysql.MySQLError) and len(args) == 2 and isinstance(args[0], int):
        cause = exc.__cause__
        # aiomysql's 2003 says which host but keeps why (refused, no route,
        # timed out) in the socket error it chains.
        why = f" ({_os_reason(cause)})" if isinstance(cause, OSError) else ""
        text = f"{args[1]}{why} [{args[0]}]"
    elif isinstance(exc, OSError):
        text = _os_reason(exc)
    else:
        text = str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    if params is not None and isinstance(params.password, str) and params.password:
        text = text.replace(params.password, "***")
    return text


def _os_reason(exc: OSError) -> str:
    # asyncio's connect errors carry the errno but a message such as
    # "Connect call failed ('127.0.0.1', 1)" that does not say what happened.
    # (getaddrinfo's errors have negative numbers, which strerror doesn't know.)
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)


def _parse(dsn: str, source: str) -> Server:
    try:
        params = parse_dsn(dsn)
    except ValueError as exc:
        # parse_dsn's message never contains the password.
        where = "" if source == "command line" else f"{source}: "
        raise CommandError(f"{where}{exc}", EXIT_USAGE) from None
    return Server(params, source)


def resolve_server(
    dsn: str | None, stack: contextlib.ExitStack, *, verbose: bool = False
) -> Server:
    """Find the server a command should use.

    In order: ``dsn`` (the command line), the ``MYSQL_DSN`` environment
    variable, :data:`LOCAL_DSN` if it accepts a login, else a throw-away
    :data:`CONTAINER_IMAGE` container when ``testcontainers`` is installed
    and a Docker engine answers; the container is stopped when ``stack``
    closes. A given DSN is used as is: a command's own connection reports
    it if it does not answer. ``verbose`` announces the container start on
    stderr (it takes a while).

    Raises:
        CommandError: a malformed DSN (status 2), or no server found
            (status 1, the message says what was tried).
    """
    if dsn is not None:
        return _parse(dsn, "command line")
    env_dsn = os.environ.get("MYSQL_DSN")
    if env_dsn:
        return _parse(env_dsn, "MYSQL_DSN")
    tried = ["MYSQL_DSN unset"]

    local = parse_dsn(LOCAL_DSN)
    problem = _probe(local)
    if problem is None:
        return Server(local, "local default")
    tried.append(f"{local.host}:{local.port}: {problem}")

    started = _start_container(stack, verbose=verbose)
    if isinstance(started, Server):
        return started
    tried.append(f"docker: {started}")
    raise CommandError("no server: " + "; ".join(tried))


def _probe(params: ConnectParams) -> str | None:
    """None if ``params`` accepts a login and answers ``SELECT 1``, else why not."""
    try:
        with socket.create_connection((params.host, params.port), timeout=_PROBE_TIMEOUT):
            pass
    except OSError as exc:
        # "connection refused" reads better than PyMySQL's 2003 wrapper.
        return (_os_reason(exc) or type(exc).__name__).lower()
    try:
        conn = pymysql.connect(
            host=params.host,
            port=params.port,
            user=params.user,
            password=params.password,
            database=params.db,
            connect_timeout=_PROBE_TIMEOUT,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        finally:
            conn.close()
    except pymysql.MySQLError as exc:
        return describe_error(exc, params)
    return None


def _docker_ping() -> str | None:
    """None if a Docker engine answers ``GET /_ping``, else why not.

    By hand rather than through the docker package, which leaks a socket
    (a ResourceWarning) when no engine runs.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    address: Any
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            parts = urlsplit(host)
            address = (parts.hostname, parts.port or 2375)
        else:
            return f"DOCKER_HOST={host} is not understood"
        with sock:
            sock.settimeout(_PROBE_TIMEOUT)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0]
    except OSError as exc:
        return f"no engine at {host} ({describe_error(exc).lower()})"
    if b" 200 " not in status + b" ":
        return f"engine at {host} answered {status.decode('ascii', 'replace')!r}"
    return None


def _start_container(stack: contextlib.ExitStack, *, verbose: bool) -> Server | str:
    """Start a MariaDB container stopped by ``stack``; or say why not."""
    try:
        try:  # testcontainers >= 4.15 moved it; the old path warns
            from testcontainers.community.mysql import MySqlContainer
        except ImportError:
            from testcontainers.mysql import MySqlContainer
    except ImportError:
        return "testcontainers not installed"
    problem = _docker_ping()
    if problem is not None:
        return problem
    if verbose:
        print(f"mysqlpool: starting a {CONTAINER_IMAGE} container...", file=sys.stderr)
    container = MySqlContainer(CONTAINER_IMAGE, username="root", password="test", dbname="test")
    try:
        try:
            container.start()
            host = container.get_container_host_ip()
            port = int(container.get_exposed_port(3306))
        except BaseException:
            # start() may have created the container before failing or being
            # interrupted: never leave it running.
            with contextlib.suppress(Exception):
                container.stop()
            raise
    except Exception as exc:
        return f"starting {CONTAINER_IMAGE} failed ({describe_error(exc)})"
    stack.callback(_stop_container, container)
    host_part = f"[{host}]" if ":" in host else host
    dsn = f"mysql://root:test@{host_part}:{port}/test"
    return Server(parse_dsn(dsn), f"container {CONTAINER_IMAGE}")


def _stop_container(container: Any) -> None:
    try:
        container.stop()
    except Exception as exc:
        print(
            f"mysqlpool: could not stop the {CONTAINER_IMAGE} container: {describe_error(exc)}",
            file=sys.stderr,
        )


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (``pct`` in 0..100); 0.0 if empty."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


@dataclass(frozen=True)
class DemoResult:
    """What a demo run measured."""

    handlers: int
    completed: int
    failed: int
    #: The first failure, already described (no password), or None.
    first_error: str | None
    wall_time: float
    #: Seconds each successful handler spent in ``pool.acquire()``, ascending.
    acquire_waits: list[float]
    server_version: str | None
    #: Taken after the last handler, before the pool closes.
    stats: PoolStats


class _Progress:
    """A ``\\r``-redrawn text bar on a stream (no terminal control codes)."""

    def __init__(self, out: TextIO, total: int) -> None:
        self._out = out
        self._total = total
        self._width = 0  # longest line so far: a shorter one must blank its tail

    def draw(self, done: int, pool: Pool) -> None:
        filled = _BAR_WIDTH * done // self._total
        stats = pool.stats()
        line = (
            f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{self._total} handlers"
            f"  in use {stats.in_use}  waiting {stats.waiting}"
        )
        self._width = max(self._width, len(line))
        self._out.write("\r" + line.ljust(self._width))
        self._out.flush()

    def finish(self) -> None:
        self._out.write("\n")
        self._out.flush()


async def _run(
    server: Server, handlers: int, pool_size: int, progress: _Progress | None
) -> DemoResult:
    params = server.params
    if params.connect_timeout is None:
        params = params.replace(connect_timeout=_DEFAULT_CONNECT_TIMEOUT)
    # min_size=1: open() logs in once before the burst, so an unreachable
    # server or bad credentials fail there with one error instead of once per
    # handler, and the timings below don't include that first handshake.
    pool = Pool(params, pool_size=pool_size, max_overflow=0, min_size=1, name=str(server.params))
    waits: list[float] = []
    failures: list[str] = []
    versions: list[str] = []
    done = 0

    async def handler(handler_id: int) -> None:
        nonlocal done
        try:
            started = time.perf_counter()
            async with pool.acquire() as conn:
                waits.append(time.perf_counter() - started)
                if not versions:
                    versions.append(_version(conn.get_server_info()))
                async with conn.cursor() as cur:
                    await cur.execute(HANDLER_SQL, (handler_id,))
                    row = await cur.fetchone()
            if row is None or row[0] != handler_id:
                failures.append(f"handler {handler_id} got {row!r} back")
        except _OPERATIONAL_ERRORS as exc:
            failures.append(describe_error(exc, params))
        finally:
            done += 1

    async def show_progress(bar: _Progress) -> None:
        while True:
            bar.draw(done, pool)
            await asyncio.sleep(_PROGRESS_INTERVAL)

    try:
        try:
            await pool.open()
        except _OPERATIONAL_ERRORS as exc:
            raise CommandError(f"{server}: {describe_error(exc, params)}") from None
        drawer = asyncio.ensure_future(show_progress(progress)) if progress is not None else None
        began = time.perf_counter()
        try:
            await asyncio.gather(*(handler(i) for i in range(handlers)))
        finally:
            wall_time = time.perf_counter() - began
            if drawer is not None:
                drawer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drawer
            if progress is not None:
                # Also when interrupted: whatever is printed next starts on
                # its own line.
                progress.draw(done, pool)
                progress.finish()
        stats = pool.stats()
    finally:
        await pool.close(timeout=_CLOSE_TIMEOUT)

    waits.sort()
    return DemoResult(
        handlers=handlers,
        completed=handlers - len(failures),
        failed=len(failures),
        first_error=failures[0] if failures else None,
        wall_time=wall_time,
        acquire_waits=waits,
        server_version=versions[0] if versions else None,
        stats=stats,
    )


def _version(server_info: str) -> str:
    # MariaDB 10.x announces itself as "5.5.5-10.11.6-MariaDB" so that old
    # clients, which assumed a major version of 5, keep working.
    prefix = "5.5.5-"
    if server_info.startswith(prefix) and "mariadb" in server_info.lower():
        return server_info[len(prefix) :]
    return server_info


def _report(result: DemoResult, server: Server, pool_size: int, out: TextIO) -> None:
    def line(label: str, value: object) -> None:
        out.write(f"  {label + ':':<14} {value}\n")

    ms = [percentile(result.acquire_waits, p) * 1000 for p in (50, 90, 99, 100)]
    throughput = result.completed / result.wall_time if result.wall_time > 0 else 0.0
    out.write("mysqlpool demo\n")
    line("server", server)
    line("version", result.server_version or "unknown")
    line("workload", f"{result.handlers} concurrent handlers, each {HANDLER_SQL!r}")
    line("pool", f"pool_size={pool_size}, max_overflow=0")
    out.write("results\n")
    line("completed", f"{result.completed} of {result.handlers} handlers ({result.failed} failed)")
    line("wall time", f"{result.wall_time:.3f} s")
    line("throughput", f"{throughput:.0f} handlers/s")
    line(
        "acquire wait",
        f"p50 {ms[0]:.2f} ms, p90 {ms[1]:.2f} ms, p99 {ms[2]:.2f} ms, max {ms[3]:.2f} ms",
    )
    out.write("pool stats\n")
    for field in dataclasses.fields(result.stats):
        value = getattr(result.stats, field.name)
        if field.name == "wait_time":
            value = f"{value:.3f} s (summed over all acquires)"
        line(field.name, value)


def run_demo(
    dsn: str | None = None,
    *,
    handlers: int = 1000,
    pool_size: int = 10,
    progress: bool | None = None,
) -> int:
    """Run the demo and print its report on stdout; return the exit status.

    Args:
        dsn: the server; None resolves one as :func:`resolve_server` does.
        handlers: simulated web handlers, all started at once.
        pool_size: the pool's ``pool_size`` (``max_overflow`` is 0, so this
            is also the most connections ever open).
        progress: draw a progress bar on stderr; None draws it only when
            stderr is a terminal.

    Returns:
        0: every handler succeeded.

    Raises:
        CommandError: no server, a malformed DSN, or the server refused the
            first connection (nothing printed on stdout); or some handlers
            failed (after the report, naming the first failure).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    with contextlib.ExitStack() as stack:
        server = resolve_server(dsn, stack, verbose=progress)
        bar = _Progress(sys.stderr, handlers) if progress else None
        result = asyncio.run(_run(server, handlers, pool_size, bar))
    _report(result, server, pool_size, sys.stdout)
    if result.failed:
        raise CommandError(
            f"{result.failed} of {result.handlers} handlers failed; first: {result.first_error}"
        )
    return 0
