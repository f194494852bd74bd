"""No write is lost or doubled while connections are killed and reset.

Tasks run small transactions (INSERT one row with a unique id, COMMIT)
through a pool whose traffic goes through the fault proxy, while the test
KILLs pool sessions on the server and RSTs every proxied connection. At
the end every acknowledged commit is in the table exactly once; the only
rows nobody was told about are those whose COMMIT itself lost its reply
(their outcome is unknowable to any client), and no row is there twice,
since the pool never re-runs a user's statement.
"""

from __future__ import annotations

import asyncio
import collections
import random
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import drivers
from conftest import Admin, Figure, PoolFactory
from faultproxy import FaultProxy
from mysqlpool import PoolError, parse_dsn

ERR = drivers.errors()  # the run's driver's error classes

TABLE = "mysqlpool_fault_writes_" + secrets.token_hex(3)  # unique: suites may share a server
TASKS, WRITES_PER_TASK = 30, 25


@pytest_asyncio.fixture
async def table(admin: Admin) -> AsyncIterator[str]:
    await admin.scalar("SET SESSION sql_notes = 0")
    await admin.scalar(f"DROP TABLE IF EXISTS {TABLE}")
    # No unique key on purpose: a doubled write must show as two rows.
    await admin.scalar(f"CREATE TABLE {TABLE} (op VARCHAR(32) NOT NULL) ENGINE=InnoDB")
    yield TABLE
    await admin.scalar(f"DROP TABLE IF EXISTS {TABLE}")


@pytest.mark.slow
async def test_no_write_lost_or_doubled_under_kills_and_resets(
    make_pool: PoolFactory, admin: Admin, table: str, mysql_dsn: str, figure: Figure
) -> None:
    params = parse_dsn(mysql_dsn)
    rng = random.Random(7)
    acknowledged: set[str] = set()
    in_doubt: set[str] = set()  # the COMMIT was sent, its reply lost
    errors: collections.Counter[str] = collections.Counter()

    held: set[Any] = set()  # checked out now, as the hooks see it
    async with FaultProxy(params.host, params.port) as proxy:
        pool = await make_pool(
            proxy.dsn(mysql_dsn),
            pool_size=6,
            max_overflow=2,
            timeout=5,
            autocommit=False,
            on_checkout=held.add,
            on_checkin=held.discard,
        )

        async def writer(task: int) -> None:
            for seq in range(WRITES_PER_TASK):
                op = f"{task}-{seq}"
                committing = False
                try:
                    async with pool.acquire() as conn:
                        async with conn.cursor() as cur:
                            await cur.execute(f"INSERT INTO {table} (op) VALUES (%s)", (op,))
                        committing = True
                        await conn.commit()
                    acknowledged.add(op)
                except (ERR.MySQLError, PoolError) as exc:
                    errors[type(exc).__name__] += 1
                    if committing:
                        in_doubt.add(op)

        async def chaos() -> None:
            for round_ in range(12):
                await asyncio.sleep(rng.uniform(0.01, 0.04))
                if round_ % 3 == 2:
                    proxy.reset_all()
                    errors["(proxy RST rounds)"] += 1
                else:
                    victims = [conn.thread_id() for conn in held]
                    for thread_id in rng.sample(victims, k=min(2, len(victims))):
                        try:
                            await admin.scalar(f"KILL {int(thread_id)}")
                            errors["(server KILLs)"] += 1
                        except ERR.MySQLError:
                            pass  # it ended on its own first

        await asyncio.wait_for(
            asyncio.gather(chaos(), *(writer(t) for t in range(TASKS))), 60
        )
        await pool.close(timeout=5)

    rows = collections.Counter(
        row[0] for row in await _all_rows(admin, f"SELECT op FROM {table}")
    )
    doubled = {op: n for op, n in rows.items() if n > 1}
    lost = acknowledged - set(rows)
    unexplained = set(rows) - acknowledged - in_doubt
    figure("writes acknowledged", len(acknowledged))
    figure("writes in doubt (COMMIT reply lost)", len(in_doubt))
    figure("rows in the table", sum(rows.values()))
    figure("writes lost / doubled", f"{len(lost)} / {sum(doubled.values())}")
    figure("faults: server KILLs / proxy RST rounds",
           f"{errors['(server KILLs)']} / {errors['(proxy RST rounds)']}")
    figure("errors surfaced", {k: v for k, v in errors.items() if not k.startswith("(")})
    assert doubled == {}
    assert lost == set()
    assert unexplained == set()
    assert len(acknowledged) > TASKS * WRITES_PER_TASK // 2  # the workload really ran
    assert errors["(server KILLs)"] + errors["(proxy RST rounds)"] > 0  # and faults hit it


async def _all_rows(admin: Admin, sql: str) -> list[tuple[str]]:
    async with admin.conn.cursor() as cur:
        await cur.execute(sql)
        return list(await cur.fetchall())
