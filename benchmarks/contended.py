"""Client instructions per query under overload, side by side (callgrind).

    python benchmarks/contended.py [--impls mysqlpool,raw-fifo,raw-dedicated] [--ops 4000]
                                   [--tasks 1000[,100,1]]
    python benchmarks/contended.py --impls \
        mysqlpool-asyncmy,raw-fifo-asyncmy,raw-dedicated-asyncmy,asyncmy   # the asyncmy driver

Any adapter of ``adapters.py`` may be named, e.g. ``--impls sqlalchemy-session,
mysqlpool-session`` for an AsyncSession read on SQLAlchemy's pool and on mysqlpool.

For each implementation, a child process runs ``--ops`` queries (``SELECT 1``
+ fetch) from ``--tasks`` tasks (1000 by default; several counts may be
given) through a pool of 10 (``raw-dedicated``: from ``min(tasks, 10)``
tasks each owning a connection), under ``valgrind --tool=callgrind``, once
with the queries and once without; the difference divided by ``--ops`` is
what the client spends per query. Unlike queries per second, it doesn't
move with the machine's load, so it shows where the throughput ratios of
scenario 2 come from: the driver's own work, the cost of 1000 tasks taking
turns on 10 connections (raw-fifo over raw-dedicated), and the pool's own
cost (mysqlpool over raw-fifo). The server comes from ``MYSQL_DSN`` or
``mysql://root@127.0.0.1:3306/test``.

As in ``hotpath.py``, an implementation may be given as ``mysqlpool@DIR`` to
import mysqlpool from ``DIR`` (a ``src`` folder, e.g. a worktree of an older
commit), so a change is measured before and after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from adapters import ADAPTERS, cursor_query
from callgrind import child_instructions

HERE = Path(__file__).resolve().parent
DSN = os.environ.get("MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
POOL = 10


async def workload(impl: str, ops: int, tasks: int) -> None:
    left = ops

    async def owner(conn: Any) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await cursor_query(conn)

    cls = ADAPTERS[impl]
    # Under callgrind everything runs tens of times slower: no SQLAlchemy
    # checkout may hit its 30 s pool_timeout.
    opts = {"pool_timeout": 3600} if hasattr(cls, "on_mysqlpool") else {}
    adapter = cls(DSN, POOL, pool_opts=opts)
    if adapter.dedicated:
        await adapter.open()
        await adapter.warm(min(tasks, POOL))
        await asyncio.gather(*(owner(conn) for conn in adapter.conns))  # type: ignore[attr-defined]
        await adapter.close()
        return
    await adapter.open()
    await adapter.warm(POOL)

    async def borrower() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with adapter.acquire() as conn:
                await adapter.query(conn)  # SELECT 1 + fetch, as the adapter's users run it

    await asyncio.gather(*(borrower() for _ in range(tasks)))
    await adapter.close()


def instructions(impl: str, ops: int, tasks: int) -> int:
    name, _, src = impl.partition("@")
    return child_instructions(
        __file__, ["--child", name, str(ops), str(tasks)], src or str(HERE.parent / "src")
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(workload(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impls", default="mysqlpool,raw-fifo,raw-dedicated")
    parser.add_argument("--ops", type=int, default=4000)
    parser.add_argument("--tasks", default="1000", help="task counts, comma-separated")
    args = parser.parse_args()
    impls = [impl for impl in args.impls.split(",") if impl]
    counts = [int(count) for count in args.tasks.split(",") if count]
    print(f"client instructions per query on {POOL} connections")
    print("| implementation | " + " | ".join(f"{count} tasks" for count in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for impl in impls:
        cells = []
        for count in counts:
            full = instructions(impl, args.ops, count)
            per_query = (full - instructions(impl, 0, count)) // args.ops
            cells.append(f"{per_query:,}")
        print(f"| {impl} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
