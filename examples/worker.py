"""Recipe: a long-running asyncio worker that shuts down cleanly on SIGTERM.

    python examples/worker.py [DSN] [--table NAME]

DSN defaults to ``$MYSQL_DSN`` (better than argv, where ``ps`` shows the
password). Each job borrows a connection, does a little work (with
``--table``, inserts one row into NAME, which needs an ``INT job`` column)
and commits. SIGTERM or SIGINT sets a stop event: the job in flight finishes,
the pool is closed gracefully, the worker prints ``worker stopped: N jobs,
pool closed`` and exits 0.

Tested by ``tests/test_recipe_worker.py``, against a real server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys

import pymysql

import mysqlpool

CLOSE_TIMEOUT = 10.0  # seconds close() waits for a connection still out
RETRY_DELAY = 1.0  # seconds between attempts while the server is unreachable


async def run(dsn: str, table: str | None) -> int:
    """Work until SIGTERM/SIGINT; return the number of jobs done."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed before anything else, so no signal finds the default handler
    # (which would kill the process mid-job, its connections unclosed).
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    jobs = 0
    seen: set[int] = set()
    # One job at a time needs one connection; max_overflow=0 keeps it so.
    # min_size=1 makes open() connect: a wrong DSN or password fails at
    # startup, where an operator looks, not in an endless retry loop.
    pool = mysqlpool.Pool(dsn, pool_size=1, max_overflow=0, min_size=1)
    try:
        await pool.open()
        print("worker started", flush=True)
        while not stop.is_set():
            try:
                thread_id = await do_job(pool, table, jobs + 1)
            except (pymysql.err.OperationalError, mysqlpool.PoolTimeout) as exc:
                # The server went away or is overloaded: the job was not
                # committed, so it is retried; wait, but wake at once on a stop.
                print(f"job failed, retrying: {exc}", file=sys.stderr, flush=True)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_DELAY)
                continue
            jobs += 1
            if thread_id not in seen:  # lets an operator (or a test) find our sessions
                seen.add(thread_id)
                print(f"worker connection {thread_id}", flush=True)
    finally:
        await pool.close(timeout=CLOSE_TIMEOUT)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return jobs


async def do_job(pool: mysqlpool.Pool, table: str | None, job: int) -> int:
    """One unit of work; returns the server thread id of the connection used."""
    async with pool.acquire() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT SLEEP(0.05)")  # stands for the real work
            if table is not None:
                await cur.execute(f"INSERT INTO `{table}` (job) VALUES (%s)", (job,))
        # The pool rolls back what is left uncommitted when the connection
        # returns, so a job counts only once this succeeds.
        await conn.commit()
        return int(conn.thread_id())


def table_name(value: str) -> str:
    """An argparse type: a plain identifier, safe to quote into SQL."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", value):
        raise argparse.ArgumentTypeError(f"not a plain table name: {value!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the worker, report; the process's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dsn", nargs="?", default=os.environ.get("MYSQL_DSN"))
    parser.add_argument("--table", type=table_name, help="insert one row per job here")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("no DSN: give one or set MYSQL_DSN")
    try:
        jobs = asyncio.run(run(args.dsn, args.table))
    except (pymysql.err.MySQLError, ValueError) as exc:
        # Unreachable server, bad credentials, bad DSN: one line, no traceback
        # (mysqlpool keeps the password out of these messages).
        print(f"worker failed: {exc}", file=sys.stderr)
        return 2
    print(f"worker stopped: {jobs} jobs, pool closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
