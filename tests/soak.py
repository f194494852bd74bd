"""A bounded soak run: a mixed workload through the pool while faults rain on it.

``nox -s soak`` (or ``python tests/soak.py --seconds 180``). Starts a private
MariaDB (see privateserver.py) behind the fault proxy (faultproxy.py), runs
reader and writer tasks through one pool, and every few seconds injects a
fault: a server-side KILL of pool sessions, an RST of every connection, a
blackhole, added latency, a SIGKILL of the server and its restart, a
graceful restart. At the end it prints one table: operations, faults by
kind, errors surfaced to callers by kind, connections leaked, writes lost
or doubled, and the longest acquire past its deadline. Exits non-zero if
anything leaked, was lost or doubled, or a reply went to the wrong caller.

Loopback only, bounded in time, and it cleans up after itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomysql
import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultproxy import FaultProxy
from mysqlpool import Pool, PoolError, PoolTimeout, parse_dsn
from privateserver import PrivateServer, missing_tools

TABLE = "soak_writes"
ACQUIRE_TIMEOUT = 2.0
OP_TIMEOUT = 5.0  # the workload's own bound on each statement


class Tally:
    """Everything the run counts."""

    def __init__(self) -> None:
        self.ops = 0
        self.faults: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.wrong_answers = 0
        self.acknowledged: set[str] = set()
        self.in_doubt: set[str] = set()
        self.worst_overrun = 0.0  # seconds an acquire took beyond its timeout

    def error(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.TimeoutError) and not isinstance(exc, PoolTimeout):
            self.errors["statement timed out (the caller's own bound)"] += 1
            return
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        self.errors[f"{type(exc).__name__}{f' {code}' if code else ''}"] += 1


async def _admin_query(server: PrivateServer, sql: str) -> list[Any]:
    conn = await aiomysql.connect(**parse_dsn(server.dsn).connect_kwargs())
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            return list(await cur.fetchall())
    finally:
        conn.close()


async def worker(number: int, pool: Pool, tally: Tally, stop: asyncio.Event) -> None:
    rng = random.Random(number)
    seq = 0
    while not stop.is_set():
        began = time.monotonic()
        committing = False
        op = ""
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                tally.worst_overrun = max(
                    tally.worst_overrun, time.monotonic() - began - ACQUIRE_TIMEOUT
                )
                async with conn.cursor() as cur:
                    if rng.random() < 0.7:
                        # A reply swallowed by a blackhole never comes: like any
                        # careful caller, bound the statement (the pool then
                        # discards the connection, its reply half read).
                        await asyncio.wait_for(cur.execute("SELECT %s", (number,)), OP_TIMEOUT)
                        (answer,) = await cur.fetchone()
                        if answer != number:
                            tally.wrong_answers += 1
                    else:
                        seq += 1
                        op = f"{number}-{seq}"
                        await asyncio.wait_for(cur.execute("BEGIN"), OP_TIMEOUT)
                        await asyncio.wait_for(
                            cur.execute(f"INSERT INTO {TABLE} (op) VALUES (%s)", (op,)), OP_TIMEOUT
                        )
                        committing = True
                        await asyncio.wait_for(cur.execute("COMMIT"), OP_TIMEOUT)
                        tally.acknowledged.add(op)
            tally.ops += 1
        except PoolTimeout as exc:
            tally.worst_overrun = max(
                tally.worst_overrun, time.monotonic() - began - ACQUIRE_TIMEOUT
            )
            tally.error(exc)
        except (pymysql.err.MySQLError, PoolError, OSError, asyncio.TimeoutError) as exc:
            tally.error(exc)
            if committing:
                tally.in_doubt.add(op)
            await asyncio.sleep(0.01)  # a real client backs off a little too


async def chaos(
    server: PrivateServer, proxy: FaultProxy, tally: Tally, stop: asyncio.Event, seed: int
) -> None:
    rng = random.Random(seed)
    kinds = ["kill sessions", "rst", "blackhole 1s", "latency 50ms 2s", "sigkill+restart",
             "graceful restart"]
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(2.0, 4.0))
            return
        except asyncio.TimeoutError:
            pass
        kind = rng.choice(kinds)
        tally.faults[kind] += 1
        if kind == "kill sessions":
            rows = await _admin_query(
                server,
                "SELECT ID FROM information_schema.PROCESSLIST"
                " WHERE USER = 'root' AND ID <> CONNECTION_ID() AND COMMAND <> 'Daemon'",
            )
            for (thread_id,) in rng.sample(rows, k=min(3, len(rows))):
                with contextlib.suppress(pymysql.err.MySQLError):  # it ended first
                    await _admin_query(server, f"KILL {int(thread_id)}")
        elif kind == "rst":
            proxy.reset_all()
        elif kind == "blackhole 1s":
            proxy.blackhole()
            await asyncio.sleep(1.0)
            await proxy.pass_through()
        elif kind == "latency 50ms 2s":
            proxy.latency(0.05)
            await asyncio.sleep(2.0)
            await proxy.pass_through()
        elif kind == "sigkill+restart":
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(server.restart)
        else:
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)


async def soak(seconds: float, tasks: int, seed: int) -> int:
    problem = missing_tools()
    if problem is not None:
        print(f"soak: no private server: {problem}", file=sys.stderr)
        return 2
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="mysqlpool-soak-") as folder:
        server = PrivateServer(Path(folder))
        await asyncio.to_thread(server.start)
        try:
            await _admin_query(server, f"CREATE TABLE {TABLE} (op VARCHAR(32)) ENGINE=InnoDB")
            async with FaultProxy("127.0.0.1", server.port) as proxy:
                pool = Pool(proxy.dsn(server.dsn), pool_size=8, max_overflow=4,
                            timeout=ACQUIRE_TIMEOUT, connect_timeout=2)
                await pool.open()
                stop = asyncio.Event()
                workers = [asyncio.ensure_future(worker(n, pool, tally, stop))
                           for n in range(tasks)]
                faults = asyncio.ensure_future(chaos(server, proxy, tally, stop, seed))
                started = time.monotonic()
                while time.monotonic() - started < seconds:
                    await asyncio.sleep(1.0)
                    done = (time.monotonic() - started) / seconds
                    print(f"\rsoak: {done:4.0%} {tally.ops} ops, {sum(tally.faults.values())}"
                          " faults", end="", file=sys.stderr, flush=True)
                print(file=sys.stderr)
                stop.set()
                await faults
                await proxy.pass_through()
                await asyncio.wait_for(asyncio.gather(*workers), 30)
                await pool.close(timeout=10)
                stats = pool.stats()
                leaked = stats.open + stats.in_use + stats.opening
            if not server.running:
                await asyncio.to_thread(server.restart)
            rows = collections.Counter(
                row[0] for row in await _admin_query(server, f"SELECT op FROM {TABLE}")
            )
        finally:
            await asyncio.to_thread(server.remove)

    lost = len(tally.acknowledged - set(rows))
    doubled = sum(n - 1 for n in rows.values() if n > 1)
    unexplained = len(set(rows) - tally.acknowledged - tally.in_doubt)
    print(f"\n## Soak: {seconds:.0f} s, {tasks} tasks, seed {seed}\n")
    print("| figure | value |\n|---|---|")
    print(f"| operations completed | {tally.ops} |")
    print(f"| writes acknowledged / in doubt (COMMIT reply lost) | "
          f"{len(tally.acknowledged)} / {len(tally.in_doubt)} |")
    for kind, count in sorted(tally.faults.items()):
        print(f"| fault injected: {kind} | {count} |")
    for kind, count in sorted(tally.errors.items()):
        print(f"| error surfaced: {kind} | {count} |")
    print(f"| replies to the wrong caller | {tally.wrong_answers} |")
    print(f"| connections leaked | {leaked} |")
    print(f"| writes lost / doubled / unexplained | {lost} / {doubled} / {unexplained} |")
    print(f"| longest acquire past its deadline | {max(tally.worst_overrun, 0.0):.3f} s |")
    bad = leaked or lost or doubled or unexplained or tally.wrong_answers
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return asyncio.run(soak(args.seconds, args.tasks, args.seed))


if __name__ == "__main__":
    sys.exit(main())
