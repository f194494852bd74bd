"""A private MariaDB server for the faults that would harm the shared one.

``PrivateServer`` runs its own ``mariadbd`` on a datadir made by
``mariadb-install-db`` in a temp folder, on a free 127.0.0.1 port, with its
own socket and pid file, so a test may SIGKILL, stop and restart it at will.
The shared server on 3306 is never touched.

Authentication is real: after install, ``root@localhost`` logs in by
``unix_socket`` over the private socket file only; the first start uses that
login to create ``root@127.0.0.1`` with an empty password and the ``test``
database, so the pool under test logs in over TCP as it would anywhere.

The session fixture ``private_server`` starts it once per session and always
stops it and removes its folder at the end; import it into a test module
(``from privateserver import private_server_fixture  # noqa: F401``) to use it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pymysql

from drivers import on_driver

__all__ = ["PrivateServer", "ServerError", "free_port", "missing_tools"]

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"

# A small footprint: the server starts in a fraction of a second and its
# datadir takes ~25 MB.
SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--performance-schema=OFF",
    "--skip-log-bin",
    "--skip-name-resolve",
    "--loose-feedback=OFF",
)

# The longest path a unix socket may have (sun_path is 108 bytes on Linux).
_MAX_SOCKET_PATH = 100


class ServerError(RuntimeError):
    """The private server could not be installed, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateServer:
    """One ``mariadbd`` of our own, in ``base`` (a folder it owns and removes).

    Not thread-safe: call its methods from one thread at a time (tests run
    ``restart()`` through ``asyncio.to_thread`` so the event loop keeps going).
    """

    def __init__(
        self,
        base: Path,
        *,
        port: int | None = None,
        options: tuple[str, ...] = (),
        defaults_file: Path | None = None,
        configure: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base
        #: Extra mariadbd options (e.g. TLS certificates) after the defaults.
        self.options = options
        #: A my.cnf read instead of none (``--defaults-file`` for ``--no-defaults``):
        #: helper scripts the server runs (Galera's SST) are handed the same
        #: file, where they would otherwise read the system's /etc/mysql/my.cnf.
        self.defaults_file = defaults_file
        #: Environment variables for the server (and the scripts it runs) over ours.
        self.env = dict(env or {})
        self.datadir = base / "data"
        # Not the shared /tmp: a starting mariadbd deletes every "#sql*" file
        # in its tmpdir, the temp tables of any other server using it too.
        self.tmpdir = base / "tmp"
        self.port = port if port is not None else free_port()
        socket_path = base / "mariadbd.sock"
        if len(str(socket_path)) > _MAX_SOCKET_PATH:
            self._socket_dir: Path | None = Path(tempfile.mkdtemp(prefix="mdb"))
            socket_path = self._socket_dir / "s.sock"
        else:
            self._socket_dir = None
        self.socket_path = socket_path
        self.pid_file = base / "mariadbd.pid"
        self.error_log = base / "error.log"
        self.stderr_log = base / "stderr.log"
        self._proc: subprocess.Popen[bytes] | None = None
        # A Galera joiner gets its accounts with the state transfer; it must not
        # be asked to make them (nor may it run DDL before it is synced).
        self._configured = not configure
        #: Seconds the last install / start took (for the figures).
        self.install_seconds: float | None = None
        self.start_seconds: float | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def dsn(self) -> str:
        """``mysql://root@127.0.0.1:<port>/test``: root with an empty password, over
        TCP (the scheme of the run's driver: ``mysql+asyncmy://`` on asyncmy)."""
        return on_driver(f"mysql://root@127.0.0.1:{self.port}/test")

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def install(self) -> None:
        """Create a fresh datadir with ``mariadb-install-db`` (root: unix_socket auth)."""
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        result = subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                f"--tmpdir={self.tmpdir}",
                *SERVER_OPTIONS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
        self.install_seconds = time.monotonic() - began
        if result.returncode != 0:
            tail = result.stdout.decode(errors="replace")[-3000:]
            raise ServerError(f"mariadb-install-db failed ({result.returncode}):\n{tail}")

    def start(self, timeout: float = 30.0, *, extra_options: tuple[str, ...] = ()) -> None:
        """Launch ``mariadbd`` and return once it accepts a TCP login.

        The first start also creates ``root@127.0.0.1`` and the ``test`` database.
        ``extra_options`` apply to this start only (e.g. ``--wsrep-new-cluster``).

        Raises:
            ServerError: with the tail of the error log, if the server exited
                or did not accept a login within ``timeout`` seconds.
        """
        if self.running:
            raise ServerError(f"private server already running (pid {self.pid})")
        if not self.datadir.exists():
            self.install()
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        defaults = (
            "--no-defaults"
            if self.defaults_file is None
            else f"--defaults-file={self.defaults_file}"
        )
        with self.stderr_log.open("ab") as stderr:
            self._proc = subprocess.Popen(
                [
                    MARIADBD,
                    defaults,
                    f"--datadir={self.datadir}",
                    "--user=root",
                    "--bind-address=127.0.0.1",
                    f"--port={self.port}",
                    f"--socket={self.socket_path}",
                    f"--pid-file={self.pid_file}",
                    f"--log-error={self.error_log}",
                    f"--tmpdir={self.tmpdir}",
                    # After a SIGKILL the port may linger a moment: wait for it.
                    "--port-open-timeout=10",
                    *SERVER_OPTIONS,
                    *self.options,
                    *extra_options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **self.env},
                start_new_session=True,  # a Ctrl-C of the test run is not sent to it
            )
        _live_servers.add(self)
        deadline = began + timeout
        try:
            if not self._configured:
                self._wait(self._configure, deadline)
                self._configured = True
            self._wait(self._tcp_login, deadline)
        except BaseException:
            self._terminate(signal.SIGKILL, 5.0)
            raise
        self.start_seconds = time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL the server and wait for the process to be gone."""
        self._terminate(signal.SIGKILL, 10.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (SIGTERM); SIGKILL if it takes over ``timeout`` s."""
        self._terminate(signal.SIGTERM, timeout)

    def restart(self, timeout: float = 30.0) -> None:
        """Start again on the same port and datadir (stopping first if it runs)."""
        if self.running:
            self.stop()
        self.start(timeout)

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    # ------------------------------------------------------------ internals

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10.0)
        # The server leads its own process group (start_new_session): whatever
        # it spawned and left behind (a Galera SST script's rsync daemon) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._proc = None
        _live_servers.discard(self)

    def _wait(self, attempt: Callable[[], None], deadline: float) -> None:
        """Call ``attempt`` until it succeeds; fail when the server died or time ran out."""
        last: Exception | None = None
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise ServerError(f"mariadbd exited ({code}) during start:\n{self.log_tail()}")
            try:
                attempt()
                return
            except (pymysql.err.OperationalError, pymysql.err.InternalError, OSError) as exc:
                last = exc
            if time.monotonic() > deadline:
                raise ServerError(
                    f"mariadbd did not accept a login on port {self.port} in time "
                    f"(last error: {last!r}):\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def _configure(self) -> None:
        """As root over the socket (unix_socket auth): allow root over TCP, create ``test``."""
        # Probe the socket first: PyMySQL leaks its socket object when the
        # unix-socket connect itself fails (server not listening yet).
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(self.socket_path))
        conn = pymysql.connect(unix_socket=str(self.socket_path), user="root", connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''")
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
                cur.execute("CREATE DATABASE IF NOT EXISTS test")
        finally:
            conn.close()

    def _tcp_login(self) -> None:
        conn = pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database="test", connect_timeout=2
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's error log and stderr."""
        text = []
        for path in (self.error_log, self.stderr_log):
            with contextlib.suppress(OSError):
                text.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(text)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<PrivateServer 127.0.0.1:{self.port} {state} in {self.base}>"


# Servers still running when the interpreter exits (a crashed test run) are killed.
_live_servers: set[PrivateServer] = set()


def missing_tools() -> str | None:
    """Why a private server can't be started here, or None if it can."""
    if not os.access(MARIADBD, os.X_OK):
        return f"{MARIADBD} is not installed (Debian package mariadb-server)"
    if shutil.which(INSTALL_DB) is None:
        return f"{INSTALL_DB} is not on PATH"
    if os.geteuid() != 0:
        return "private servers are started as root (--user=root)"
    return None


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.kill()
