"""A bounded soak of the pool over a real 3-node Galera cluster, under faults.

``nox -s soak_cluster -- --seconds 120 --tasks 100`` (or ``python
tests/soak_cluster.py --seconds 120``). Starts a private 3-node Galera
cluster (cluster.py) in a temp folder, runs reader and writer tasks through
one pool spread over the nodes (``load_balance="round_robin"``, 9
connections), and every few seconds injects a fault on one node, chosen at
random (``--seed``): a SIGKILL and, a few seconds later, its restart (IST), a
desync (``wsrep_desync``), ``wsrep_reject_queries=ALL``, or a ``KILL`` of
some of the pool's sessions. Faults come one at a time and each ends with
its node back, so the cluster never loses quorum.

At the end it prints one table: operations, faults by kind, errors surfaced
to callers by kind, each node's share of the operations, slots leaked,
writes lost / doubled / in doubt, the longest acquire past its deadline,
replies to the wrong caller, and how long each killed node took from Synced
to serving the pool again. Exits 1 if anything leaked, was lost or
doubled, the counters don't add up, the nodes disagree, or a reply went to
the wrong caller (2: no cluster tools here; 130: interrupted). A timeline of
the faults and of the pool's view of each node goes to stderr.

Writes are checked exactly: each has a unique id. One acknowledged must be
present exactly once; one whose COMMIT got no reply (or an error other than
a conflict) is in doubt and may be present once or not at all. A conflict
(1213: certification failure or brute-force abort) is the server's definite
"rolled back", so the write is retried with the *same* id: were that answer
wrong, the id would show up twice. Half the writes also bump a shared
counter row in the same transaction (which is what makes conflicts happen
across nodes); the counters must add up to those writes' rows.

Loopback only, bounded in time; the cluster is removed at the end, on an
error or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import random
import signal
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import GaleraCluster, execute, missing_cluster_tools
from mysqlpool import Pool, PoolError, PoolTimeout
from mysqlpool._backoff import BACKOFF_CAP

APP_USER = "soak_app"
APP_PASSWORD = "soak-app-Pw1"
TABLE = "soak_writes"
HOT_TABLE = "soak_hot"
HOT_ROWS = 8  # few: writes on different nodes conflict on them
ACQUIRE_TIMEOUT = 10.0
# The workload's own bound on each statement: generous, since commits stall
# for the ~3 s Galera takes to evict a killed node.
OP_TIMEOUT = 15.0
CONFLICT_RETRIES = 5
ER_LOCK_DEADLOCK = 1213
READ_SHARE = 0.6
# After the last fault, how long the run waits for a killed node to serve
# again: the pool's longest backoff step (its cap, jittered up by half).
REJOIN_GRACE = BACKOFF_CAP * 1.5 + 5.0

FAULT_KINDS = ("sigkill+restart", "desync", "reject queries", "kill sessions")

_began = time.monotonic()


def note(message: str) -> None:
    """One line of the run's timeline on stderr, stamped with seconds since the start."""
    print(f"{time.monotonic() - _began:7.2f} s  {message}", file=sys.stderr, flush=True)


@dataclass
class Rejoin:
    """One SIGKILL of a node and its way back into the pool."""

    node: int
    port: int
    killed_at: float
    synced_at: float | None = None  # restart() saw it Synced again
    step: float = 0.0  # the pool's backoff left on the host at that moment
    served_at: float | None = None  # the first operation it served after the kill
    killed_again_at: float | None = None  # killed again before it served


@dataclass
class Tally:
    """Everything the run counts."""

    reads: int = 0
    writes: int = 0
    by_port: collections.Counter[int] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    conflicts_retried: int = 0
    conflicts_given_up: int = 0
    wrong_answers: int = 0
    acknowledged: set[str] = field(default_factory=set)
    in_doubt: set[str] = field(default_factory=set)
    slowest_acquire: float = 0.0
    worst_overrun: float = -ACQUIRE_TIMEOUT  # seconds an acquire took past its timeout
    rejoins: list[Rejoin] = field(default_factory=list)
    watching: dict[int, Rejoin] = field(default_factory=dict)  # port -> a node killed
    all_back: asyncio.Event = field(default_factory=asyncio.Event)  # watching is empty

    def error(self, exc: BaseException, where: str) -> None:
        if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, PoolTimeout):
            self.errors["statement timed out (the caller's own bound)"] += 1
            return
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        self.errors[f"{type(exc).__name__}{f' {code}' if code else ''} ({where})"] += 1

    def acquire_took(self, seconds: float) -> None:
        self.slowest_acquire = max(self.slowest_acquire, seconds)
        self.worst_overrun = max(self.worst_overrun, seconds - ACQUIRE_TIMEOUT)

    def served(self, port: int) -> None:
        self.by_port[port] += 1
        rejoin = self.watching.get(port)
        if rejoin is not None:
            rejoin.served_at = time.monotonic()
            del self.watching[port]
            if not self.watching:
                self.all_back.set()


def app_dsn(ports: list[int]) -> str:
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return f"mysql://{APP_USER}:{urllib.parse.quote(APP_PASSWORD)}@{hosts}/test"


async def bounded(cur: Any, sql: str, args: tuple[Any, ...] | None = None) -> None:
    # A node SIGKILLed mid-statement answers at once (its sockets close), but
    # a commit may wait for the eviction: bound it, as a careful caller does.
    await asyncio.wait_for(cur.execute(sql, args), OP_TIMEOUT)


async def write(cur: Any, op: str, hot: int | None, tally: Tally, state: dict[str, bool]) -> None:
    """One transaction inserting ``op`` (and bumping counter ``hot``), retried on conflicts."""
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            await bounded(cur, "BEGIN")
            await bounded(
                cur, f"INSERT INTO {TABLE} (op, hot) VALUES (%s, %s)", (op, hot is not None)
            )
            if hot is not None:
                await bounded(cur, f"UPDATE {HOT_TABLE} SET n = n + 1 WHERE id = %s", (hot,))
            state["committing"] = True
            await bounded(cur, "COMMIT")
            state["committing"] = False
            tally.acknowledged.add(op)
            return
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != ER_LOCK_DEADLOCK:
                raise
            # A definite rollback (the whole transaction): the same id again.
            state["committing"] = False
            await bounded(cur, "ROLLBACK")
            if attempt == CONFLICT_RETRIES:
                tally.conflicts_given_up += 1
                raise
            tally.conflicts_retried += 1


async def worker(number: int, seed: int, pool: Pool, tally: Tally, stop: asyncio.Event) -> None:
    rng = random.Random(seed * 100_003 + number)
    seq = 0
    while not stop.is_set():
        seq += 1
        op = f"{number}-{seq}"
        began = time.monotonic()
        acquired = False
        state = {"committing": False}
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                acquired = True
                tally.acquire_took(time.monotonic() - began)
                async with conn.cursor() as cur:
                    if rng.random() < READ_SHARE:
                        expected = number * 10_000_000 + seq  # nobody else asks for it
                        await bounded(cur, "SELECT %s", (expected,))
                        row = await cur.fetchone()
                        if row is None or row[0] != expected:
                            tally.wrong_answers += 1
                        tally.reads += 1
                    else:
                        hot = rng.randrange(HOT_ROWS) if rng.random() < 0.5 else None
                        await write(cur, op, hot, tally, state)
                        tally.writes += 1
                tally.served(conn.port)
        except (pymysql.err.MySQLError, PoolError, OSError, asyncio.TimeoutError) as exc:
            if not acquired:
                tally.acquire_took(time.monotonic() - began)
            tally.error(exc, "a statement" if acquired else "acquire")
            if state["committing"]:
                tally.in_doubt.add(op)
            await asyncio.sleep(0.01)  # a real client backs off a little too


def kill_sessions(cluster: GaleraCluster, node: int, rng: random.Random) -> int:
    """KILL up to 3 of the pool's sessions on ``node``; how many were killed."""
    port = cluster.ports[node]
    rows = execute(
        port,
        "SELECT ID FROM information_schema.PROCESSLIST"
        f" WHERE USER = '{APP_USER}' ORDER BY ID",
    )
    killed = 0
    for (thread_id,) in rng.sample(rows, k=min(3, len(rows))):
        with contextlib.suppress(pymysql.err.MySQLError):  # it ended first
            execute(port, f"KILL {int(thread_id)}")
            killed += 1
    return killed


async def chaos(
    cluster: GaleraCluster, pool: Pool, tally: Tally, stop: asyncio.Event, seed: int
) -> None:
    """One fault at a time on one node, each over (the node back) before the next."""
    rng = random.Random(seed)
    nodes = len(cluster.ports)
    while True:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(2.0, 5.0))
        if stop.is_set():
            return
        kind = rng.choice(FAULT_KINDS)
        node = rng.randrange(nodes)
        hold = rng.uniform(2.0, 5.0)
        port = cluster.ports[node]
        tally.faults[kind] += 1
        lasting = "" if kind == "kill sessions" else f" for {hold:.1f} s"
        note(f"fault: {kind} on node {node}{lasting}")
        if kind == "sigkill+restart":
            await asyncio.to_thread(cluster.kill, node)
            if port in tally.watching:
                tally.watching[port].killed_again_at = time.monotonic()
            rejoin = Rejoin(node, port, time.monotonic())
            tally.rejoins.append(rejoin)
            tally.watching[port] = rejoin  # its old connections are dead by now
            tally.all_back.clear()
            await asyncio.sleep(hold)
            await asyncio.to_thread(cluster.restart, node)
            rejoin.synced_at = time.monotonic()
            host = pool.stats().hosts[f"127.0.0.1:{port}"]
            rejoin.step = host.retry_in or 0.0
            note(f"node {node} Synced again; the pool's backoff on it: {rejoin.step:.2f} s")
        elif kind == "desync":
            await asyncio.to_thread(cluster.desync, node, True)
            await asyncio.sleep(hold)
            await asyncio.to_thread(cluster.desync, node, False)
            await asyncio.to_thread(cluster.wait_synced, node)
            note(f"node {node} Synced again")
        elif kind == "reject queries":
            await asyncio.to_thread(execute, port, "SET GLOBAL wsrep_reject_queries = ALL")
            await asyncio.sleep(hold)
            await asyncio.to_thread(execute, port, "SET GLOBAL wsrep_reject_queries = NONE")
            note(f"node {node} accepts queries again")
        else:
            killed = await asyncio.to_thread(kill_sessions, cluster, node, rng)
            note(f"node {node}: {killed} sessions killed")


async def watch_hosts(pool: Pool, labels: list[str]) -> None:
    """Note each change of the pool's view of a node (down, its reason, up)."""
    seen: dict[str, tuple[str, str | None]] = {}
    while True:
        hosts = pool.stats().hosts
        for i, label in enumerate(labels):
            host = hosts[label]
            now = (host.state, host.down_reason)
            if seen.get(label, ("up", None)) != now:
                if host.state == "up":
                    note(f"pool: node {i} up (open {host.open})")
                else:
                    retry = host.retry_in or 0.0
                    note(f"pool: node {i} down ({host.down_reason}); next try in {retry:.2f} s")
            seen[label] = now
        await asyncio.sleep(0.02)


def final_rows(cluster: GaleraCluster) -> list[tuple[collections.Counter[str], int, int]]:
    """Per node: how many times each op is present, the counters' sum, the hot rows."""
    cluster.healthy()
    found = []
    for port in cluster.ports:
        sync = "SET SESSION wsrep_sync_wait = 1"  # reads wait for all the cluster committed
        rows = execute(port, sync, f"SELECT op, COUNT(*) FROM {TABLE} GROUP BY op")
        ((counters, hot_rows),) = execute(
            port,
            sync,
            f"SELECT (SELECT COALESCE(SUM(n), 0) FROM {HOT_TABLE}),"
            f" (SELECT COUNT(*) FROM {TABLE} WHERE hot)",
        )
        found.append(
            (collections.Counter({str(op): int(n) for op, n in rows}), int(counters), int(hot_rows))
        )
    return found


def prepare(cluster: GaleraCluster) -> None:
    execute(
        cluster.ports[0],
        f"CREATE TABLE {TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
        " op VARCHAR(32) NOT NULL, hot BOOL NOT NULL, KEY (op)) ENGINE=InnoDB",
        f"CREATE TABLE {HOT_TABLE} (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
        f"INSERT INTO {HOT_TABLE} (id, n) VALUES "
        + ", ".join(f"({i}, 0)" for i in range(HOT_ROWS)),
    )
    # After the tables in Galera's total order: once the account logs in on
    # every node, the tables are there too.
    cluster.create_user(APP_USER, APP_PASSWORD)


async def soak(cluster: GaleraCluster, seconds: float, tasks: int, seed: int) -> int:
    # SIGTERM unwinds like Ctrl-C: the main task is cancelled, the pool closed.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    tally = Tally()
    ports = cluster.ports
    labels = [f"127.0.0.1:{port}" for port in ports]
    pool = Pool(
        app_dsn(ports),
        load_balance="round_robin",
        pool_size=9,
        max_overflow=0,
        timeout=ACQUIRE_TIMEOUT,
        connect_timeout=2,
    )
    await pool.open()
    problems: list[str] = []
    stop_faults, stop_work = asyncio.Event(), asyncio.Event()
    workers = [
        asyncio.ensure_future(worker(n, seed, pool, tally, stop_work)) for n in range(tasks)
    ]
    faults = asyncio.ensure_future(chaos(cluster, pool, tally, stop_faults, seed))
    watcher = asyncio.ensure_future(watch_hosts(pool, labels))
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds and not faults.done():
            await asyncio.sleep(min(10.0, max(0.0, started + seconds - time.monotonic())))
            shares = "/".join(str(tally.by_port[port]) for port in ports)
            note(f"{tally.reads + tally.writes} operations so far (per node {shares})")
        stop_faults.set()
        await faults  # the fault under way ends with its node back
        if tally.watching:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(tally.all_back.wait(), REJOIN_GRACE)
        stop_work.set()
        await asyncio.wait_for(asyncio.gather(*workers), ACQUIRE_TIMEOUT + OP_TIMEOUT + 10)
        note("workload stopped")
    finally:
        stop_faults.set()
        stop_work.set()
        for task in (*workers, faults, watcher):
            task.cancel()
        await asyncio.gather(*workers, faults, watcher, return_exceptions=True)
        try:
            pool.check_invariants()
        except AssertionError as exc:
            problems.append(f"before close: {exc}")
        left_in_use = pool.stats().in_use
        await pool.close(timeout=10)
    elapsed = time.monotonic() - started
    try:
        pool.check_invariants()
    except AssertionError as exc:
        problems.append(f"after close: {exc}")
    stats = pool.stats()
    marked_down = [stats.hosts[label].failures for label in labels]
    leaked = (
        left_in_use
        + stats.open
        + stats.in_use
        + stats.opening
        + sum(host.open for host in stats.hosts.values())
    )

    per_node = await asyncio.to_thread(final_rows, cluster)
    present, counters, hot_rows = per_node[0]
    disagree = sum(1 for other in per_node[1:] if other != per_node[0])
    lost = len(tally.acknowledged - set(present))
    doubled = sum(n - 1 for n in present.values() if n > 1)
    unexplained = len(set(present) - tally.acknowledged - tally.in_doubt)
    doubt_landed = len(tally.in_doubt & set(present))
    torn = abs(counters - hot_rows)

    ops = tally.reads + tally.writes
    served = sum(tally.by_port.values()) or 1
    shares = " / ".join(
        f"node {i} {100 * tally.by_port[port] / served:.0f}%" for i, port in enumerate(ports)
    )
    print(f"\n## Soak over a Galera cluster: {elapsed:.0f} s, {tasks} tasks, seed {seed}\n")
    print("| figure | value |\n|---|---|")
    print(f"| operations completed (reads / writes) | {ops} ({tally.reads} / {tally.writes}) |")
    print(f"| share of operations per node | {shares} |")
    print(
        "| writes acknowledged / in doubt (of which committed) | "
        f"{len(tally.acknowledged)} / {len(tally.in_doubt)} ({doubt_landed}) |"
    )
    print(
        "| conflicts (1213) retried with the same id / given up | "
        f"{tally.conflicts_retried} / {tally.conflicts_given_up} |"
    )
    for kind in FAULT_KINDS:
        print(f"| fault injected: {kind} | {tally.faults[kind]} |")
    for kind, count in sorted(tally.errors.items()):
        print(f"| error surfaced: {kind} | {count} |")
    print(f"| times the pool marked each node down | {' / '.join(map(str, marked_down))} |")
    print(f"| replies to the wrong caller | {tally.wrong_answers} |")
    print(f"| slots leaked | {leaked} |")
    print(f"| writes lost / doubled / unexplained | {lost} / {doubled} / {unexplained} |")
    print(f"| counter increments / rows of counted writes | {counters} / {hot_rows} |")
    print(f"| nodes whose rows differ from node 0's | {disagree} |")
    print(
        f"| slowest acquire / longest past its deadline | {tally.slowest_acquire:.3f} s"
        f" / {max(tally.worst_overrun, 0.0):.3f} s |"
    )
    rejoined = []
    for rejoin in tally.rejoins:
        if rejoin.synced_at is None or rejoin.served_at is None:
            if rejoin.synced_at is not None and rejoin.killed_again_at is not None:
                unused = rejoin.killed_again_at - rejoin.synced_at
                why = f"killed again {unused:.2f} s after"
            else:
                why = "not served by the end"
            rejoined.append(f"node {rejoin.node}: {why} (backoff {rejoin.step:.2f} s)")
            continue
        back = max(0.0, rejoin.served_at - rejoin.synced_at)
        rejoined.append(f"node {rejoin.node}: {back:.2f} s (backoff {rejoin.step:.2f} s)")
    print(f"| killed node Synced -> serving again | {'; '.join(rejoined) or 'none killed'} |")
    for problem in problems:
        print(f"| invariant broken | {problem} |")
    bad = (
        leaked
        or problems
        or lost
        or doubled
        or unexplained
        or torn
        or disagree
        or tally.wrong_answers
    )
    return 1 if bad else 0


def run(seconds: float, tasks: int, seed: int) -> int:
    problem = missing_cluster_tools()
    if problem is not None:
        print(f"soak_cluster: no cluster: {problem}", file=sys.stderr)
        return 2
    # Outside the event loop SIGTERM unwinds like Ctrl-C, through the cleanup below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # The pool's own warnings say less than the timeline's "pool:" lines.
    logging.getLogger("mysqlpool").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="mysqlpool-soak-cluster-") as folder:
        cluster = GaleraCluster(Path(folder))
        try:
            note("starting a 3-node Galera cluster")
            cluster.start()
            note(f"cluster Synced in {cluster.start_seconds:.1f} s, ports {cluster.ports}")
            prepare(cluster)
            return asyncio.run(soak(cluster, seconds, tasks, seed))
        except (KeyboardInterrupt, asyncio.CancelledError):
            note("interrupted: removing the cluster")
            return 130
        finally:
            # A second Ctrl-C must not stop the cleanup halfway.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            cluster.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return run(args.seconds, args.tasks, args.seed)


if __name__ == "__main__":
    sys.exit(main())
