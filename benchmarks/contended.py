"""Client instructions per query under overload, side by side (callgrind).

    python benchmarks/contended.py [--impls mysqlpool,raw-fifo,raw-dedicated] [--ops 4000]

For each implementation, a child process runs ``--ops`` queries (``SELECT 1``
+ fetch) from 1000 tasks through a pool of 10 (``raw-dedicated``: from 10
tasks each owning a connection), under ``valgrind --tool=callgrind``, once
with the queries and once without; the difference divided by ``--ops`` is
what the client spends per query. Unlike queries per second, it doesn't
move with the machine's load, so it shows where the throughput ratios of
scenario 2 come from: the driver's own work, the cost of 1000 tasks taking
turns on 10 connections (raw-fifo over raw-dedicated), and the pool's own
cost (mysqlpool over raw-fifo). The server comes from ``MYSQL_DSN`` or
``mysql://root@127.0.0.1:3306/test``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiomysql
from adapters import ADAPTERS, connect_kwargs, cursor_query

DSN = os.environ.get("MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
TASKS = 1000
POOL = 10


async def workload(impl: str, ops: int) -> None:
    left = ops

    async def owner(conn: Any) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await cursor_query(conn)

    if impl == "raw-dedicated":
        conns = [await aiomysql.connect(**connect_kwargs(DSN)) for _ in range(POOL)]
        await asyncio.gather(*(owner(conn) for conn in conns))
        for conn in conns:
            conn.close()
        return
    adapter = ADAPTERS[impl](DSN, POOL)
    await adapter.open()
    await adapter.warm(POOL)

    async def borrower() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with adapter.acquire() as conn:
                await cursor_query(conn)

    await asyncio.gather(*(borrower() for _ in range(TASKS)))
    await adapter.close()


def instructions(impl: str, ops: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                impl,
                str(ops),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total for {impl}:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(workload(sys.argv[2], int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impls", default="mysqlpool,raw-fifo,raw-dedicated")
    parser.add_argument("--ops", type=int, default=4000)
    args = parser.parse_args()
    print(f"client instructions per query, {TASKS} tasks on {POOL} connections")
    print("| implementation | instructions/query |")
    print("|---|---|")
    for impl in args.impls.split(","):
        per_query = (instructions(impl, args.ops) - instructions(impl, 0)) // args.ops
        print(f"| {impl} | {per_query:,} |", flush=True)


if __name__ == "__main__":
    main()
