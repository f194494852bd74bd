"""Real clusters on loopback for the failover tests: Galera, and primary + replica.

Both are built from ``PrivateServer`` (privateserver.py): each node is its own
``mariadbd`` with its own datadir, ports, socket and pid file in a temp folder,
so the tests may kill, desync and restart nodes at will. The shared server on
3306 is never touched. Node indices are 0-based, in the order of ``ports``.

``GaleraCluster`` starts node 0 with ``--wsrep-new-cluster`` and the others
join it one at a time by rsync state transfer (SST), starting from an empty
datadir: the accounts and the ``test`` database arrive with the transfer.
Timeouts are cut so a dead node is evicted in a few seconds; a restarted node
catches up by incremental transfer (IST) from the survivors' gcache.

``PrimaryReplica`` is two servers with classic GTID replication; the replica
is ``read_only``, which binds ordinary accounts only (root has READ ONLY
ADMIN), so tests that want the read-only error use ``create_user()``.

The session fixtures ``galera_cluster`` and ``primary_replica`` start each once
per session and always stop and remove them at the end; conftest.py registers
both, so the whole session shares one of each. A test that breaks a node
calls ``healthy()`` afterwards (in a ``finally``) to hand the next test a
whole cluster.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pymysql
import pytest
from pymysql.converters import escape_string

from drivers import on_driver
from privateserver import MARIADBD, PrivateServer, ServerError, free_port, missing_tools

__all__ = [
    "GaleraCluster",
    "PrimaryReplica",
    "galera_cluster_fixture",
    "missing_cluster_tools",
    "primary_replica_fixture",
]

GALERA_LIB = Path("/usr/lib/galera/libgalera_smm.so")
SST_SCRIPT = Path("/usr/bin/wsrep_sst_rsync")
#: rsync state transfer, run by a wrapper of ours (see ``_sst_tools``).
SST_METHOD = "rsync_as_root"

# Cut from the defaults (suspect 5 s, inactive 15 s) so a SIGKILLed node is
# dropped from the view in ~3 s. They must keep keepalive <= check period <=
# suspect <= inactive; peer_timeout makes a silent TCP peer be given up early.
EVS_OPTIONS = (
    "evs.keepalive_period=PT0.5S",
    "evs.inactive_check_period=PT0.5S",
    "evs.suspect_timeout=PT1.5S",
    "evs.inactive_timeout=PT3S",
    "evs.install_timeout=PT3S",
    "gmcast.peer_timeout=PT2S",
)

T = TypeVar("T")


def missing_cluster_tools() -> str | None:
    """Why the clusters can't be started here, or None if they can."""
    problem = missing_tools()
    if problem is not None:
        return problem
    if not GALERA_LIB.exists():
        return f"{GALERA_LIB} is not installed (Debian package galera-4)"
    if shutil.which("rsync") is None or not SST_SCRIPT.exists():
        return f"rsync or {SST_SCRIPT} is missing (Galera's state transfer uses them)"
    return None


def connect(
    port: int, *, user: str = "root", password: str = "", timeout: float = 2.0
) -> pymysql.connections.Connection[Any]:
    """A pymysql connection to ``127.0.0.1:port``, database ``test``, autocommit."""
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        database="test",
        connect_timeout=timeout,
        read_timeout=10,
        write_timeout=10,
        autocommit=True,
    )


def execute(port: int, *statements: str, user: str = "root", password: str = "") -> list[Any]:
    """Run ``statements`` in one session; the rows of the last one."""
    conn = connect(port, user=user, password=password)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def _poll(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Call ``probe`` until it returns something not None (server errors count
    as not yet); raise ServerError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except (pymysql.err.MySQLError, OSError) as exc:
            result, last = None, exc
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise ServerError(f"not reached within {timeout} s: {what} (last: {last!r})")
        time.sleep(0.05)


def processes_under(base: Path) -> list[int]:
    """Ids of the processes whose command line names a path under ``base``.

    A node's server, its SST script and the script's rsync daemon all name
    the node's folder; nothing else does.
    """
    marker = str(base).encode() + b"/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _kill_strays(base: Path, timeout: float = 5.0) -> None:
    """SIGKILL what a node left behind and wait until it is gone: its process
    group is killed with it, but a script may have left that group."""
    deadline = time.monotonic() + timeout
    while strays := processes_under(base):
        if time.monotonic() > deadline:
            raise ServerError(f"processes of {base} survive SIGKILL: {strays}")
        for pid in strays:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _sst_tools(folder: Path) -> Path:
    """A folder for the servers' PATH with the ``rsync_as_root`` SST method.

    Started by root, an rsync daemon serves its modules as "nobody" unless its
    config says otherwise, and nobody may not write the joiner's datadir; the
    config Galera's rsync SST script writes says nothing. So the method is
    that script with an ``rsync`` first on PATH that runs daemons as root.
    (``wsrep_sst_method=rsync`` can't be wrapped: mariadbd puts its own bin
    folder first on the scripts' PATH.)
    """
    folder.mkdir(parents=True, exist_ok=True)
    rsync = shutil.which("rsync") or "/usr/bin/rsync"
    scripts = {
        "rsync": (
            'case " $* " in *" --daemon "*)\n'
            f'    exec {rsync} "$@" --dparam=uid=root --dparam=gid=root ;;\n'
            "esac\n"
            f'exec {rsync} "$@"\n'
        ),
        f"wsrep_sst_{SST_METHOD}": f'PATH="{folder}:$PATH" exec {SST_SCRIPT} "$@"\n',
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    return folder


def _sql_string(value: str) -> str:
    return f"'{escape_string(value)}'"


# ---------------------------------------------------------------- Galera


class GaleraCluster:
    """``nodes`` Galera nodes on 127.0.0.1, each a ``PrivateServer`` in ``base/node<i>``.

    Not thread-safe: call its methods from one thread at a time.
    """

    def __init__(self, base: Path, nodes: int = 3) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        self.base = base
        #: Galera group communication port of each node (gmcast.listen_addr).
        self.galera_ports = [free_port() for _ in range(nodes)]
        peers = ",".join(f"127.0.0.1:{port}" for port in self.galera_ports)
        env = {"PATH": f"{_sst_tools(base / 'bin')}:{os.environ.get('PATH', '')}"}
        self.servers: list[PrivateServer] = []
        for i in range(nodes):
            folder = base / f"node{i}"
            folder.mkdir(parents=True, exist_ok=True)
            port = free_port()
            cnf = folder / "node.cnf"
            cnf.write_text(self._node_cnf(i, port, peers))
            # Only node 0 is configured; the others get its accounts by SST.
            server = PrivateServer(
                folder, port=port, defaults_file=cnf, configure=(i == 0), env=env
            )
            self.servers.append(server)
        #: Seconds the last ``start()`` took to have every node Synced.
        self.start_seconds: float | None = None

    def _node_cnf(self, i: int, port: int, peers: str) -> str:
        """Node ``i``'s my.cnf: the Galera settings (the rest is on the command line)."""
        provider = "; ".join(
            (
                f"gmcast.listen_addr=tcp://127.0.0.1:{self.galera_ports[i]}",
                f"ist.recv_addr=127.0.0.1:{free_port()}",
                "gcache.size=16M",  # the default 128M file per node is most of its disk
                *EVS_OPTIONS,
            )
        )
        return "\n".join(
            (
                "[mysqld]",
                "wsrep_on=ON",
                f"wsrep_provider={GALERA_LIB}",
                f'wsrep_provider_options="{provider}"',
                "wsrep_cluster_name=mysqlpool_tests",
                f"wsrep_cluster_address=gcomm://{peers}",
                "wsrep_node_address=127.0.0.1",
                f"wsrep_node_name=node{i}",
                f"wsrep_node_incoming_address=127.0.0.1:{port}",
                f"wsrep_sst_method={SST_METHOD}",
                f"wsrep_sst_receive_address=127.0.0.1:{free_port()}",
                "binlog_format=ROW",
                "default_storage_engine=InnoDB",
                "innodb_autoinc_lock_mode=2",
                "",
            )
        )

    # ------------------------------------------------------------ addresses

    @property
    def ports(self) -> list[int]:
        """The SQL port of each node."""
        return [server.port for server in self.servers]

    @property
    def dsn(self) -> str:
        """All nodes in one DSN: ``mysql://root@127.0.0.1:p0,127.0.0.1:p1,.../test``."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return on_driver(f"mysql://root@{hosts}/test")

    @property
    def node_dsns(self) -> list[str]:
        """One DSN per node."""
        return [server.dsn for server in self.servers]

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> None:
        """Bootstrap node 0, join the others one by one; return when all are Synced."""
        began = time.monotonic()
        first = self.servers[0]
        first.start(timeout, extra_options=("--wsrep-new-cluster",))
        self.wait_synced(0, timeout)
        for i in range(1, len(self.servers)):
            self._join(i, timeout)
        self.wait_cluster_size(len(self.servers), timeout)
        self.start_seconds = time.monotonic() - began

    def _join(self, i: int, timeout: float, extra_options: tuple[str, ...] = ()) -> None:
        server = self.servers[i]
        # An empty datadir: the state transfer fills it (no mariadb-install-db).
        server.datadir.mkdir(parents=True, exist_ok=True)
        server.start(timeout, extra_options=extra_options)
        self.wait_synced(i, timeout)

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (and anything it spawned)."""
        self.servers[i].kill()
        _kill_strays(self.servers[i].base)

    def stop_node(self, i: int, timeout: float = 10.0) -> None:
        """Shut node ``i`` down gracefully (SIGKILL after ``timeout`` s)."""
        self.servers[i].stop(timeout)
        _kill_strays(self.servers[i].base)

    def restart(self, i: int, timeout: float = 60.0) -> None:
        """Bring node ``i`` back (stopping it first if it runs); return when Synced.

        It rejoins by IST where the survivors' gcache still holds what it
        missed. A killed node's grastate.dat says seqno -1, so its position
        is first recovered from InnoDB (``--wsrep-recover``) and handed over
        with ``--wsrep_start_position``. The survivors must have dropped the
        dead node from the view first: a node that rejoins under the address
        of a member still in the view is refused.
        """
        server = self.servers[i]
        if server.running:
            self.stop_node(i)
        survivors = [j for j, other in enumerate(self.servers) if other.running]
        if not survivors:
            self._bootstrap_again(i, timeout)
            return
        self._survivors_primary(survivors, timeout)
        position = self._recover_position(i)
        options = () if position is None else (f"--wsrep_start_position={position}",)
        self._join(i, timeout, options)

    def _survivors_primary(self, survivors: list[int], timeout: float) -> None:
        """Wait until the survivors have dropped the dead from their view; if
        they are left without quorum (most nodes died at once), make them
        the primary component again (``pc.bootstrap``)."""

        def dropped() -> bool | None:
            sizes = {self.status(j).get("wsrep_cluster_size") for j in survivors}
            return True if sizes == {str(len(survivors))} else None

        _poll(f"nodes {survivors} drop the dead", dropped, timeout)
        if self.status(survivors[0]).get("wsrep_cluster_status") != "Primary":
            execute(
                self.ports[survivors[0]], "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"
            )
        self.wait_cluster_size(len(survivors), timeout)

    def _bootstrap_again(self, i: int, timeout: float) -> None:
        """Start a new cluster from node ``i`` when no node is left running.

        Galera refuses to bootstrap from a node that did not leave last
        (``safe_to_bootstrap: 0``); the tests know better, so it is overruled.
        """
        grastate = self.servers[i].datadir / "grastate.dat"
        with contextlib.suppress(OSError):
            text = grastate.read_text()
            grastate.write_text(re.sub(r"safe_to_bootstrap:\s*0", "safe_to_bootstrap: 1", text))
        position = self._recover_position(i)
        options = ["--wsrep-new-cluster"]
        if position is not None:
            options.append(f"--wsrep_start_position={position}")
        self.servers[i].start(timeout, extra_options=tuple(options))
        self.wait_synced(i, timeout)

    def _most_advanced(self) -> int:
        """The stopped node that committed the most, to bootstrap from (the
        others would lose what it has and they don't)."""
        seqnos = []
        for i in range(len(self.servers)):
            position = self._recover_position(i)
            seqnos.append(-1 if position is None else int(position.rsplit(":", 1)[1]))
        return seqnos.index(max(seqnos))

    def _recover_position(self, i: int) -> str | None:
        """``uuid:seqno`` recovered from node ``i``'s InnoDB, or None if there is none."""
        server = self.servers[i]
        if not (server.datadir / "ibdata1").exists():
            return None  # never got a state: a full transfer it is
        log = server.base / "recover.log"
        log.unlink(missing_ok=True)
        subprocess.run(
            [
                MARIADBD,
                f"--defaults-file={server.defaults_file}",
                f"--datadir={server.datadir}",
                "--user=root",
                f"--log-error={log}",
                "--wsrep-recover",
                "--skip-networking",
                f"--socket={server.base / 'recover.sock'}",
                f"--pid-file={server.base / 'recover.pid'}",
                f"--tmpdir={server.tmpdir}",
                "--innodb-buffer-pool-size=16M",
                "--performance-schema=OFF",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        with contextlib.suppress(OSError):
            found = re.findall(r"Recovered position:\s*(\S+:-?\d+)", log.read_text())
            if found and not found[-1].endswith(":-1"):
                return str(found[-1])
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node (SIGTERM, SIGKILL after ``timeout`` s): a node in a
        state transfer may not heed SIGTERM."""
        for i in reversed(range(len(self.servers))):
            self.stop_node(i, timeout)

    def remove(self) -> None:
        """Stop every node and delete the cluster's folder."""
        try:
            self.stop()
        finally:
            for server in self.servers:
                server.remove()
            shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------ state

    def status(self, i: int) -> dict[str, str]:
        """Node ``i``'s ``wsrep%`` status variables."""
        rows = execute(self.ports[i], "SHOW GLOBAL STATUS LIKE 'wsrep%'")
        return {str(name): str(value) for name, value in rows}

    def _synced(self, i: int) -> bool:
        status = self.status(i)
        return (
            status.get("wsrep_ready") == "ON"
            and status.get("wsrep_local_state_comment") == "Synced"
            and status.get("wsrep_cluster_status") == "Primary"
        )

    def _check_running(self, i: int) -> None:
        server = self.servers[i]
        if not server.running:
            raise ServerError(f"galera node {i} is not running:\n{server.log_tail()}")

    def wait_synced(self, i: int | None = None, timeout: float = 30.0) -> None:
        """Wait until node ``i`` (default: every running node) is ready and Synced."""
        nodes = [i] if i is not None else [j for j, s in enumerate(self.servers) if s.running]

        def probe() -> bool | None:
            for j in nodes:
                self._check_running(j)
            return True if all(self._synced(j) for j in nodes) else None

        _poll(f"galera nodes {nodes} Synced", probe, timeout)

    def wait_cluster_size(self, n: int, timeout: float = 30.0) -> None:
        """Wait until every running node is in a primary component of ``n`` nodes."""
        running = [j for j, server in enumerate(self.servers) if server.running]

        def probe() -> bool | None:
            for j in running:
                status = self.status(j)
                if status.get("wsrep_cluster_size") != str(n):
                    return None
                if status.get("wsrep_cluster_status") != "Primary":
                    return None
            return True

        _poll(f"cluster size {n} on nodes {running}", probe, timeout)

    def desync(self, i: int, on: bool) -> None:
        """Take node ``i`` out of flow control (``wsrep_desync``), or put it back."""
        execute(self.ports[i], f"SET GLOBAL wsrep_desync={'ON' if on else 'OFF'}")

    def healthy(self, timeout: float = 60.0) -> None:
        """Restart dead nodes, clear desync, and wait for all nodes Synced.

        Cheap when the cluster is whole already: a few status queries.
        """
        if not any(server.running for server in self.servers):
            self._bootstrap_again(self._most_advanced(), timeout)
        for i, server in enumerate(self.servers):
            if not server.running:
                self.restart(i, timeout)
        for port in self.ports:
            if execute(port, "SELECT @@wsrep_desync")[0][0]:
                execute(port, "SET GLOBAL wsrep_desync=OFF")
        self.wait_cluster_size(len(self.servers), timeout)
        self.wait_synced(None, timeout)

    def create_user(self, name: str, password: str, grants: str = "ALL ON test.*") -> None:
        """``name@'%'`` identified by ``password`` with ``grants``, on every node.

        Returns once the account logs in on each node (DDL replicates in
        total order, but a node applies it on its own time).
        """
        account = f"{_sql_string(name)}@'%'"
        execute(
            self._any_running(),
            f"CREATE OR REPLACE USER {account} IDENTIFIED BY {_sql_string(password)}",
            f"GRANT {grants} TO {account}",
        )
        for server in self.servers:
            if server.running:
                login = functools.partial(
                    execute, server.port, "SELECT 1", user=name, password=password
                )
                _poll(f"{name} logs in on port {server.port}", login, 10.0)

    def _any_running(self) -> int:
        for server in self.servers:
            if server.running:
                return server.port
        raise ServerError("no galera node is running")

    def disk_bytes(self, i: int) -> int:
        """Bytes node ``i``'s folder takes on disk."""
        return sum(
            path.stat().st_blocks * 512
            for path in self.servers[i].base.rglob("*")
            if path.is_file() and not path.is_symlink()
        )

    def __repr__(self) -> str:
        states = ", ".join("up" if s.running else "down" for s in self.servers)
        return f"<GaleraCluster ports {self.ports} [{states}] in {self.base}>"


# ---------------------------------------------------------------- primary + replica


class PrimaryReplica:
    """A primary and a read-only replica (GTID replication), in ``base``.

    Not thread-safe: call its methods from one thread at a time.
    """

    REPL_USER = "repl"
    REPL_PASSWORD = "repl-password"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.primary, self.replica = self._servers()
        #: True once ``promote_replica()`` made the replica writable.
        self.promoted = False
        #: Seconds the last ``start()`` took to have the pair replicating.
        self.start_seconds: float | None = None

    def _servers(self) -> tuple[PrivateServer, PrivateServer]:
        # These come after SERVER_OPTIONS' --skip-log-bin: the later option wins.
        common = ("--binlog-format=ROW", "--log-slave-updates")
        primary = PrivateServer(
            self.base / "primary",
            port=self.primary_port,
            options=("--log-bin=primary-bin", "--server-id=1", *common),
        )
        replica = PrivateServer(
            self.base / "replica",
            port=self.replica_port,
            options=("--log-bin=replica-bin", "--server-id=2", "--read-only=1", *common),
        )
        return primary, replica

    @property
    def dsn(self) -> str:
        """Both servers, primary first: ``mysql://root@127.0.0.1:pp,127.0.0.1:rp/test``."""
        return on_driver(
            f"mysql://root@127.0.0.1:{self.primary_port},127.0.0.1:{self.replica_port}/test"
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start a new pair and its replication; return once the replica has caught up."""
        began = time.monotonic()
        # mariadb-install-db takes most of the time: run both at once.
        fresh = [s for s in (self.primary, self.replica) if not s.datadir.exists()]
        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(server.install) for server in fresh]:
                done.result()
        self.primary.start(timeout)
        self.replica.start(timeout)
        execute(
            self.primary_port,
            f"CREATE OR REPLACE USER {self.REPL_USER}@'%' "
            f"IDENTIFIED BY {_sql_string(self.REPL_PASSWORD)}",
            f"GRANT REPLICATION SLAVE ON *.* TO {self.REPL_USER}@'%'",
        )
        # The replica replays the primary's binlog from its start (the
        # accounts and the test database made by the first start: idempotent).
        execute(
            self.replica_port,
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', "
            f"MASTER_PORT={self.primary_port}, MASTER_USER='{self.REPL_USER}', "
            f"MASTER_PASSWORD={_sql_string(self.REPL_PASSWORD)}, "
            "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos",
            "START SLAVE",
        )
        self.wait_replicated(timeout)
        self.start_seconds = time.monotonic() - began

    def replica_status(self) -> dict[str, Any]:
        """The replica's ``SHOW SLAVE STATUS`` as a dict (empty when not a replica)."""
        conn = connect(self.replica_port)
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                row: dict[str, Any] | None = cur.fetchone()
                return row or {}
        finally:
            conn.close()

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Wait until the replica has applied all the primary has written so far
        (its ``gtid_slave_pos`` reaches the primary's ``gtid_binlog_pos``).

        Raises:
            ServerError: with the replica's last error, if a replication
                thread stopped, or if it did not catch up in time.
        """
        target = _gtid_pos(execute(self.primary_port, "SELECT @@gtid_binlog_pos")[0][0])

        def caught_up() -> bool | None:
            status = self.replica_status()
            if not status:
                raise ServerError("the replica is not replicating (promoted?)")
            # "Connecting" is fine (the primary may be restarting); "No" is a stop.
            if "No" in (status.get("Slave_SQL_Running"), status.get("Slave_IO_Running")):
                raise ServerError(
                    f"replication stopped: IO {status.get('Last_IO_Error')!r}, "
                    f"SQL {status.get('Last_SQL_Error')!r}"
                )
            done = _gtid_pos(execute(self.replica_port, "SELECT @@gtid_slave_pos")[0][0])
            behind = [domain for domain, seqno in target.items() if done.get(domain, 0) < seqno]
            return None if behind else True

        _poll("the replica catches up with the primary", caught_up, timeout)

    def kill_primary(self) -> None:
        """SIGKILL the primary."""
        self.primary.kill()

    def promote_replica(self) -> None:
        """Make the replica a writable primary of its own."""
        execute(self.replica_port, "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only=0")
        self.promoted = True

    def create_user(self, name: str, password: str, grants: str = "ALL ON test.*") -> None:
        """``name@'%'`` with ``grants``, made on the primary; returns once replicated."""
        account = f"{_sql_string(name)}@'%'"
        execute(
            self.primary_port,
            f"CREATE OR REPLACE USER {account} IDENTIFIED BY {_sql_string(password)}",
            f"GRANT {grants} TO {account}",
        )
        self.wait_replicated()

    def healthy(self, timeout: float = 30.0) -> None:
        """Undo a failover: if a server is down or the replica was promoted,
        make the pair afresh on the same ports (DSNs stay valid; data and
        accounts made by tests are gone)."""
        if self.primary.running and self.replica.running and not self.promoted:
            self.wait_replicated(timeout)
            return
        for server in (self.replica, self.primary):
            server.kill()  # its data is thrown away: no need to shut down cleanly
            server.remove()
        self.primary, self.replica = self._servers()
        self.promoted = False
        self.start(timeout)

    def stop(self) -> None:
        """Stop both servers (SIGTERM; SIGKILL if one takes over 10 s)."""
        self.replica.stop()
        self.primary.stop()

    def remove(self) -> None:
        """Stop both servers and delete their folders."""
        try:
            self.stop()
        finally:
            self.replica.remove()
            self.primary.remove()
            shutil.rmtree(self.base, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<PrimaryReplica {self.primary!r} -> {self.replica!r}>"


def _gtid_pos(text: object) -> dict[int, int]:
    """``'0-1-5,1-2-7'`` as ``{domain: seqno}``."""
    pos: dict[int, int] = {}
    for part in str(text or "").split(","):
        if part.strip():
            domain, _server, seqno = part.strip().split("-")
            pos[int(domain)] = int(seqno)
    return pos


# ---------------------------------------------------------------- fixtures


def _skip_if(problem: str | None) -> None:
    """Skip on a developer's machine without the tools; fail in CI, which installs them."""
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"no cluster in CI: {problem}", pytrace=False)
        pytest.skip(f"no cluster: {problem}")


@pytest.fixture(scope="session", name="galera_cluster")
def galera_cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GaleraCluster]:
    """A 3-node Galera cluster, Synced, for the session; removed at the end.
    Tests that break a node call ``healthy()`` before they return."""
    _skip_if(missing_cluster_tools())
    cluster = GaleraCluster(tmp_path_factory.mktemp("galera"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session", name="primary_replica")
def primary_replica_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrimaryReplica]:
    """A primary and a replicating read-only replica for the session; removed at
    the end. Tests that fail over call ``healthy()`` before they return."""
    _skip_if(missing_tools())
    pair = PrimaryReplica(tmp_path_factory.mktemp("replication"))
    try:
        pair.start()
        yield pair
    finally:
        pair.remove()
