"""Where the server a command talks to is, and how a command reports failure.

Shared by ``python -m mysqlpool`` commands and the test suite, so they find
the server the same way: a DSN given on the command line, else
``MYSQL_DSN``, else the local default server, else (where Docker runs) a
throw-away testcontainers MariaDB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pymysql

from ._driver_names import driver_errors
from ._dsn import parse_dsn
from ._params import ConnectParams

__all__ = [
    "CONTAINER_IMAGE",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "LOCAL_DSN",
    "CommandError",
    "Server",
    "describe_error",
    "resolve_server",
]

#: Exit status for "it did not work": no server, a driver error, failed handlers.
EXIT_FAILURE = 1
#: Exit status for "it was asked wrongly": a malformed DSN or option (argparse's too).
EXIT_USAGE = 2

#: Tried when neither a DSN argument nor ``MYSQL_DSN`` is given.
LOCAL_DSN = "mysql://root@127.0.0.1:3306/test"
#: Started through testcontainers when nothing else answers.
CONTAINER_IMAGE = "mariadb:10.11"

# The local default is only a guess: give up on it quickly.
_PROBE_TIMEOUT = 2.0


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
    #: The DSN as given, password included: for code, never for display.
    dsn: str = field(repr=False)

    def __str__(self) -> str:
        return f"{self.params} ({self.source})"

    def on_driver(self, driver: str | None) -> Server:
        """This server, reached through ``driver`` (None: the DSN's own).

        Raises:
            CommandError: an unknown driver name (status 2).
        """
        if driver is None or driver == self.params.driver:
            return self
        try:
            params = self.params.replace(driver=driver)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        return dataclasses.replace(self, params=params)


def describe_error(exc: BaseException, params: ConnectParams | None = None) -> str:
    """One line for a driver, pool or socket error, without the password.

    PyMySQL errors show as ``message [code]``. Driver messages do not quote
    passwords, but the password is masked anyway: the message goes to a
    terminal or a CI log, where a leak can't be taken back.
    """
    args = exc.args
    if isinstance(exc, driver_errors()) and len(args) == 2 and isinstance(args[0], int):
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
    return Server(params, source, dsn)


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
        return Server(local, "local default", LOCAL_DSN)
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
    return Server(parse_dsn(dsn), f"container {CONTAINER_IMAGE}", dsn)


def _stop_container(container: Any) -> None:
    try:
        container.stop()
    except Exception as exc:
        print(
            f"mysqlpool: could not stop the {CONTAINER_IMAGE} container: {describe_error(exc)}",
            file=sys.stderr,
        )
