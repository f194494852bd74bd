"""The pool over real clusters on loopback: a 3-node Galera cluster, and a
primary with a read-only replica (the fixtures are in cluster.py).

Each guarantee of the "many hosts" issue has a test here, and each records
its figures (printed in the table at the end of the run; `nox -s cluster`
runs just this module). The tests log in as an ordinary account: root would
bypass ``read_only`` (READ ONLY ADMIN) and hide what a replica refuses.
"""

from __future__ import annotations

import asyncio
import collections
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import drivers
from cluster import GaleraCluster, PrimaryReplica, execute
from conftest import Figure, scalar
from mysqlpool import Pool
from mysqlpool._aging import auto_recycle
from polling import until

ERR = drivers.errors()  # the run's driver's error classes

# Starting a cluster (in the first test's setup) and restarting a node take a while.
pytestmark = pytest.mark.timeout(240)

APP_USER = "pool_app"
APP_PASSWORD = "pool-app-Pw1"
TABLE = "pool_failover"

# Galera's own timeouts in the cluster fixture evict a dead node in about 3 s.
ACQUIRE_TIMEOUT = 15.0
# How late acquire() may return past its timeout on this noisy machine.
MARGIN = 0.5
# Deadlock / certification conflict: the workload retries these, as an app must.
ER_LOCK_DEADLOCK = 1213
ER_OPTION_PREVENTS_STATEMENT = 1290  # "--read-only"
ER_NODE_NOT_READY = 1047


def app_dsn(ports: list[int]) -> str:
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return drivers.on_driver(f"mysql://{APP_USER}:{urllib.parse.quote(APP_PASSWORD)}@{hosts}/test")


def on_port(pool: Pool, port: int) -> int:
    """The pool's connections open to the server on ``port``."""
    return pool.stats().hosts[f"127.0.0.1:{port}"].open


def host_of(pool: Pool, port: int) -> Any:
    return pool.stats().hosts[f"127.0.0.1:{port}"]


@pytest.fixture(scope="module")
def galera(galera_cluster: GaleraCluster) -> Iterator[GaleraCluster]:
    """The session's cluster, healthy, with the test account and table."""
    galera_cluster.healthy()
    galera_cluster.create_user(APP_USER, APP_PASSWORD)
    execute(
        galera_cluster.ports[0],
        f"CREATE OR REPLACE TABLE {TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
        " task INT NOT NULL, n INT NOT NULL, KEY (task))",
    )
    yield galera_cluster
    galera_cluster.healthy()


@pytest.fixture
def pair(primary_replica: PrimaryReplica) -> Iterator[PrimaryReplica]:
    """The session's primary and replica, healthy, with the test account and table;
    made healthy again (rebuilt after a promotion) when the test ends."""
    primary_replica.healthy()
    primary_replica.create_user(APP_USER, APP_PASSWORD)
    execute(
        primary_replica.primary_port,
        f"CREATE OR REPLACE TABLE {TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
        " task INT NOT NULL, n INT NOT NULL)",
    )
    primary_replica.wait_replicated()
    try:
        yield primary_replica
    finally:
        primary_replica.healthy()


# -- a workload that records what happened to every operation ---------------------------


@dataclass
class Op:
    task: int
    began: float
    ended: float
    port: int | None  # the node that served it (None: no connection)
    error: str | None  # None: it succeeded
    acquire_seconds: float


@dataclass
class Workload:
    """``tasks`` tasks reading and writing through ``pool`` until stopped."""

    pool: Pool
    tasks: int
    ops: list[Op] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    running: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.running = [asyncio.create_task(self._run(task)) for task in range(self.tasks)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.running), ACQUIRE_TIMEOUT + 10)

    async def _run(self, task: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            began = time.monotonic()
            port: int | None = None
            acquired = began
            error: str | None = None
            try:
                async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                    acquired = time.monotonic()
                    port = drivers.port_of(conn)
                    await self._operation(conn, task, n)
            except (ERR.MySQLError, OSError, TimeoutError) as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                error = f"{type(exc).__name__} {code}" if code else type(exc).__name__
            ended = time.monotonic()
            self.ops.append(Op(task, began, ended, port, error, acquired - began))
            if error is not None:
                await asyncio.sleep(0.01)  # as a real client would, not a hot loop

    async def _operation(self, conn: Any, task: int, n: int) -> None:
        async with conn.cursor() as cur:
            if n % 2:
                await cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE task = %s", (task,))
                await cur.fetchall()
                return
            for attempt in range(3):
                try:
                    await cur.execute(f"INSERT INTO {TABLE} (task, n) VALUES (%s, %s)", (task, n))
                    return
                except ERR.OperationalError as exc:
                    if exc.args[0] != ER_LOCK_DEADLOCK or attempt == 2:
                        raise

    def first_success_after(self, moment: float) -> dict[int, float]:
        """Per task, when its first operation begun after ``moment`` succeeded."""
        firsts: dict[int, float] = {}
        for op in self.ops:
            if op.error is None and op.began >= moment:
                firsts[op.task] = min(firsts.get(op.task, op.ended), op.ended)
        return firsts


def op_shares(ops: list[Op], ports: list[int], start: float | None, end: float) -> list[str]:
    """Per node, the share of operations served between two moments, in percent."""
    served = collections.Counter(
        op.port
        for op in ops
        if op.error is None and (start is None or op.began >= start) and op.ended <= end
    )
    total = sum(served.values()) or 1
    return [f"{100 * served[port] / total:.0f}%" for port in ports]


def shares(pool: Pool, ports: list[int]) -> list[int]:
    return [on_port(pool, port) for port in ports]


async def wait_evicted(cluster: GaleraCluster, survivor: int, size: int) -> float:
    """Poll a survivor until the cluster has ``size`` members; when that was seen."""
    port = cluster.ports[survivor]
    while True:
        rows = await asyncio.to_thread(
            execute, port, "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'"
        )
        if rows and int(rows[0][1]) == size:
            return time.monotonic()
        await asyncio.sleep(0.05)


# -- Galera ------------------------------------------------------------------------------


async def test_galera_node_killed_under_load_then_rejoining(
    galera: GaleraCluster, figure: Figure
) -> None:
    ports = galera.ports
    victim = 2
    pool = Pool(app_dsn(ports), load_balance="round_robin", pool_size=9, max_overflow=0, min_size=9)
    async with pool:
        work = Workload(pool, tasks=200)
        work.start()
        await until(lambda: len(work.ops) > 600, "the workload runs", 20)
        before = shares(pool, ports)
        assert before == [3, 3, 3]

        # 1. SIGKILL one node under load.
        killed_at = time.monotonic()
        await asyncio.to_thread(galera.kill, victim)
        evicted_at = await wait_evicted(galera, 0, 2)
        firsts = {}

        def every_task_served_again() -> bool:
            nonlocal firsts
            firsts = work.first_success_after(evicted_at)
            return len(firsts) == work.tasks

        await until(every_task_served_again, "every task served after the eviction", 20)
        added = max(firsts.values()) - evicted_at
        await until(lambda: sum(shares(pool, ports)) == 9, "the pool refilled", 10)
        after_kill = shares(pool, ports)

        # 2. The node restarts (IST) and the pool takes it back by itself.
        restarting_at = time.monotonic()
        await asyncio.to_thread(galera.restart, victim)
        synced_at = time.monotonic()  # seen a little late: the pool may be faster
        host = pool.stats().hosts[f"127.0.0.1:{ports[victim]}"]
        step = host.retry_in or 0.0
        await until(lambda: on_port(pool, ports[victim]) > 0, "the node used again", step + 10)
        used_again = time.monotonic() - synced_at
        await until(
            lambda: max(shares(pool, ports)) - min(shares(pool, ports)) <= 1,
            "connections spread evenly again",
            10,
        )
        after_rejoin = shares(pool, ports)
        await work.finish()

    ops_after_kill = [op for op in work.ops if op.began >= killed_at]
    failed = [op for op in work.ops if op.error is not None]
    errors_by_node = collections.Counter(
        (f"node {ports.index(op.port)}" if op.port else "no connection") for op in failed
    )
    slowest_acquire = max(op.acquire_seconds for op in work.ops)
    figure("galera: operations (reads + writes)", len(work.ops))
    figure("galera: errors by node", dict(errors_by_node))
    figure("galera: error kinds", dict(collections.Counter(op.error for op in failed)))
    figure("galera: cluster eviction after SIGKILL (s)", round(evicted_at - killed_at, 2))
    figure("galera: time the pool added after the eviction (s)", round(added, 3))
    figure(
        "galera: per-node connections before / after kill / after rejoin",
        f"{before} / {after_kill} / {after_rejoin}",
    )
    figure(
        "galera: share of operations per node, before the kill / after the eviction",
        f"{op_shares(work.ops, ports, None, killed_at)} / "
        f"{op_shares(work.ops, ports, evicted_at, synced_at)}",
    )
    figure("galera: restarted node Synced -> used again (s)", round(used_again, 2))
    figure("galera: backoff step in effect at the restart (s)", round(step, 2))
    figure("galera: slowest acquire (s)", round(slowest_acquire, 3))

    # Only operations on the killed node failed; nobody waited past a deadline.
    assert set(errors_by_node) <= {f"node {victim}"}, errors_by_node
    assert not any("Timeout" in (op.error or "") for op in work.ops)
    assert slowest_acquire < ACQUIRE_TIMEOUT + MARGIN
    # Every acquire after the kill that was served was served by the survivors,
    # as long as the node was dead.
    assert all(
        op.port != ports[victim]
        for op in ops_after_kill
        if op.error is None and op.ended < restarting_at
    )
    # Generous: the figure above is what we publish; this bound only catches a
    # pool that waits for a deadline (ACQUIRE_TIMEOUT) instead of moving on.
    # (1.58 s was seen on a loaded 2-core machine.)
    assert added < 5.0
    assert after_kill[victim] == 0
    assert abs(after_kill[0] - after_kill[1]) <= 1
    assert used_again < step + 1.0  # within the backoff step, with no call from us
    pool.check_invariants()


async def test_a_desynced_node_gets_no_new_connections(
    galera: GaleraCluster, figure: Figure
) -> None:
    ports = galera.ports
    await asyncio.to_thread(galera.desync, 1, True)
    try:
        state = (await asyncio.to_thread(galera.status, 1))["wsrep_local_state_comment"]
        assert state != "Synced"
        pool = Pool(app_dsn(ports), load_balance="round_robin", pool_size=6, max_overflow=0)
        async with pool:
            conns = await asyncio.gather(*(pool.acquire() for _ in range(6)))
            assert shares(pool, ports) == [3, 0, 3]
            desynced = host_of(pool, ports[1])
            assert desynced.state == "down"
            assert state in desynced.down_reason
            for conn in conns:
                await pool.release(conn)
            figure("galera: desynced node", f"{state}: {desynced.down_reason}")

            await asyncio.to_thread(galera.desync, 1, False)
            await asyncio.to_thread(galera.wait_synced, 1)
            await until(lambda: host_of(pool, ports[1]).state == "up", "node 1 back", 10)
            assert on_port(pool, ports[1]) >= 1  # the probe's connection was kept
            for _ in range(3):  # the returns move connections over to it
                conns = await asyncio.gather(*(pool.acquire() for _ in range(6)))
                for conn in conns:
                    await pool.release(conn)
            assert shares(pool, ports) == [2, 2, 2]
    finally:
        if (await asyncio.to_thread(galera.status, 1))["wsrep_local_state_comment"] != "Synced":
            await asyncio.to_thread(galera.desync, 1, False)


async def test_error_1047_marks_the_node_down_and_closes_its_idle_connections(
    galera: GaleraCluster,
) -> None:
    ports = galera.ports
    pool = Pool(app_dsn(ports), pool_size=2, min_size=2)  # failover: both on node 0
    async with pool:
        assert shares(pool, ports) == [2, 0, 0]
        try:
            refused = await fail_with_node_out_of_service(pool, ports[0])
            assert refused.args[0] == ER_NODE_NOT_READY
            first = host_of(pool, ports[0])
            assert (first.state, first.open) == ("down", 0)  # the idle one too
            async with pool.acquire() as conn:
                assert drivers.port_of(conn) == ports[1]
        finally:
            await asyncio.to_thread(execute, ports[0], "SET GLOBAL wsrep_reject_queries = NONE")
        await until(lambda: host_of(pool, ports[0]).state == "up", "node 0 back", 10)


async def test_recycle_auto_stays_below_the_lowest_wait_timeout_of_the_nodes(
    galera: GaleraCluster,
) -> None:
    ports = galera.ports
    await asyncio.to_thread(execute, ports[2], "SET GLOBAL wait_timeout = 20")
    try:
        pool = Pool(app_dsn(ports), load_balance="round_robin", pool_size=3, min_size=3)
        async with pool:
            assert shares(pool, ports) == [1, 1, 1]
            assert pool.recycle == auto_recycle(20) == 18
    finally:
        await asyncio.to_thread(execute, ports[2], "SET GLOBAL wait_timeout = DEFAULT")


async def fail_with_node_out_of_service(pool: Pool, port: int) -> BaseException:
    """Take the node on ``port`` out of service while a connection to it is
    checked out, and return the error its next query raised through the
    ``acquire()`` block."""
    try:
        async with pool.acquire() as conn:
            await asyncio.to_thread(execute, port, "SET GLOBAL wsrep_reject_queries = ALL")
            await scalar(conn, f"SELECT COUNT(*) FROM {TABLE}")
    except ERR.MySQLError as exc:
        return exc
    pytest.fail("the query on a node rejecting queries succeeded")


# -- a primary and a replica ---------------------------------------------------------------


async def test_target_primary_never_hands_out_the_replica(pair: PrimaryReplica) -> None:
    # The replica first in the list: order alone would pick it.
    pool = Pool(app_dsn([pair.replica_port, pair.primary_port]), target="primary", pool_size=4)
    async with pool:
        conns = await asyncio.gather(*(pool.acquire() for _ in range(4)))
        assert {drivers.port_of(conn) for conn in conns} == {pair.primary_port}
        for conn in conns:
            async with conn.cursor() as cur:
                await cur.execute(f"INSERT INTO {TABLE} (task, n) VALUES (1, 1)")
            await pool.release(conn)
        replica = host_of(pool, pair.replica_port)
        assert (replica.state, replica.role) == ("down", "replica")


async def test_target_replica_reads_replicated_rows_and_cannot_write(
    pair: PrimaryReplica,
) -> None:
    dsn = app_dsn([pair.primary_port, pair.replica_port])
    async with Pool(dsn, target="primary") as writer, Pool(dsn, target="replica") as reader:
        async with writer.acquire() as conn, conn.cursor() as cur:
            await cur.execute(f"INSERT INTO {TABLE} (task, n) VALUES (2, 42)")
        await asyncio.to_thread(pair.wait_replicated)
        async with reader.acquire() as conn:
            assert drivers.port_of(conn) == pair.replica_port
            assert await scalar(conn, f"SELECT n FROM {TABLE} WHERE task = 2") == 42
            with pytest.raises(ERR.MySQLError) as refused:
                await scalar(conn, f"INSERT INTO {TABLE} (task, n) VALUES (2, 43)")
            assert refused.value.args[0] == ER_OPTION_PREVENTS_STATEMENT


async def test_prefer_replica_falls_back_to_the_primary(pair: PrimaryReplica) -> None:
    dsn = app_dsn([pair.primary_port, pair.replica_port])  # the primary first
    async with Pool(dsn, target="prefer_replica", pool_size=2) as pool:
        async with pool.acquire() as conn:
            assert drivers.port_of(conn) == pair.replica_port  # found although listed second
        await asyncio.to_thread(pair.replica.kill)
        await pool.clear()
        async with pool.acquire() as conn:
            assert drivers.port_of(conn) == pair.primary_port
            assert await scalar(conn, "SELECT @@read_only") == 0


async def test_promoted_replica_serves_writes_without_restarting_the_app(
    pair: PrimaryReplica, figure: Figure
) -> None:
    dsn = app_dsn([pair.primary_port, pair.replica_port])
    async with Pool(dsn, target="primary", pool_size=4) as pool:
        work = Workload(pool, tasks=20)
        work.start()
        await until(lambda: len(work.ops) > 100, "the workload runs", 10)
        await asyncio.to_thread(pair.kill_primary)
        killed_at = time.monotonic()
        await until(lambda: any(op.error for op in work.ops), "writes fail", 10)
        await asyncio.to_thread(pair.promote_replica)
        promoted_at = time.monotonic()
        await until(
            lambda: len(work.first_success_after(promoted_at)) == work.tasks,
            "every task served by the promoted server",
            10,
        )
        back = max(work.first_success_after(promoted_at).values()) - promoted_at
        await work.finish()
    served_after = [op for op in work.ops if op.error is None and op.began >= killed_at]
    assert served_after
    assert all(op.port == pair.replica_port for op in served_after)
    figure("replica promoted -> every task writing again (s)", round(back, 3))
    figure(
        "primary killed: operations failed / served after",
        f"{sum(op.error is not None for op in work.ops)} / {len(served_after)}",
    )
