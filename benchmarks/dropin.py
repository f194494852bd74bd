"""What drop-in mode costs per query, next to ``Pool.acquire()`` (callgrind).

    python benchmarks/dropin.py [--ops 2000] [--modes pool,dropin,pool-held,dropin-held]
                                [--src DIR ...]

Each mode runs ``--ops`` queries (``SELECT 1`` + fetch, as in contended.py)
from one task, in a child process under ``valgrind --tool=callgrind``, once
with the queries and once without; the difference divided by ``--ops`` is
the client's instructions per query:

* ``pool``: ``async with pool.acquire() as conn`` around each query;
* ``dropin``: ``async with aiomysql.connect(**kw) as conn`` around each,
  under ``mysqlpool.enable()`` with the same pool options;
* ``pool-held`` / ``dropin-held``: one checkout, then every query on it:
  what a query costs on the pool's own connection object and on the object
  a drop-in ``connect()`` hands out;
* ``pool-rollback``: as ``pool`` with autocommit off, so every return
  sends a ROLLBACK (the bounded wait on the return's round trip);
* ``pool-asyncmy``, ``dropin-asyncmy``, ``pool-held-asyncmy``,
  ``dropin-held-asyncmy``: the same on asyncmy (``driver="asyncmy"``, and
  ``asyncmy.connect`` under ``enable()``, whose holders are proxies).

Every mode uses ``reset_on_return="rollback"``, and all but
``pool-rollback`` autocommit on, so a return needs no round trip and only
the client's own work is compared.
``--src DIR`` (repeatable) also measures mysqlpool imported from ``DIR`` (a
``src`` folder of another commit), so a change is measured before and after
in one run. The server comes from ``MYSQL_DSN`` or
``mysql://root@127.0.0.1:3306/test``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from callgrind import child_instructions

HERE = Path(__file__).resolve().parent
DSN = os.environ.get("MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
OPTIONS: dict[str, Any] = {"pool_size": 1, "max_overflow": 0, "reset_on_return": "rollback"}


async def query(conn: Any) -> None:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        await cur.fetchall()


async def workload(mode: str, ops: int) -> None:
    import aiomysql

    import mysqlpool

    kw = mysqlpool.parse_dsn(DSN).connect_kwargs()
    kw["autocommit"] = True
    driver = "aiomysql"
    if mode.endswith("-asyncmy"):
        mode = mode.removesuffix("-asyncmy")
        driver = "asyncmy"
        p = mysqlpool.parse_dsn(DSN)
        # asyncmy.connect's keywords (database=, no auth_plugin=...).
        kw = {"host": p.host, "port": p.port, "user": p.user, "password": p.password}
        kw.update(database=p.db, autocommit=True)
    if mode.startswith("pool"):
        pool = mysqlpool.Pool(
            DSN, autocommit=mode != "pool-rollback", driver=driver, **OPTIONS
        )
        async with pool.acquire() as conn:
            await query(conn)  # opened and warm
        if mode == "pool-held":
            async with pool.acquire() as conn:
                for _ in range(ops):
                    await query(conn)
        else:
            for _ in range(ops):
                async with pool.acquire() as conn:
                    await query(conn)
        await pool.close()
        return
    mysqlpool.enable(**OPTIONS)
    connect = aiomysql.connect  # looked up after enable(): the patched one
    if driver == "asyncmy":
        import asyncmy

        connect = asyncmy.connect
    async with connect(**kw) as conn:
        await query(conn)
    if mode == "dropin-held":
        async with connect(**kw) as conn:
            for _ in range(ops):
                await query(conn)
    else:
        for _ in range(ops):
            async with connect(**kw) as conn:
                await query(conn)
    await mysqlpool.disable()


def instructions(mode: str, ops: int, src: str) -> int:
    return child_instructions(__file__, ["--child", mode, str(ops)], src)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(workload(sys.argv[2], int(sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="pool,dropin,pool-held,dropin-held")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--src", action="append", default=[])
    args = parser.parse_args()
    sources = [str(HERE.parent / "src"), *args.src]
    modes = [mode for mode in args.modes.split(",") if mode]
    print(f"client instructions per query, {args.ops} queries, one task")
    print("| mode | " + " | ".join(sources) + " |")
    print("|---|" + "---|" * len(sources))
    for mode in modes:
        cells = []
        for src in sources:
            per_query = (instructions(mode, args.ops, src) - instructions(mode, 0, src)) // args.ops
            cells.append(f"{per_query:,}")
        print(f"| {mode} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
