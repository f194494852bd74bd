"""SQLAlchemy on mysqlpool beside plain SQLAlchemy, in the same run.

Three scenarios, each comparing ``create_async_engine`` with SQLAlchemy's
own pool (``AsyncAdaptedQueuePool``) and ``mysqlpool.sqlalchemy``'s, same
URL, ``pool_size=10, max_overflow=0``:

- ``sqlalchemy``: throughput of AsyncSession reads (a session per operation,
  ``SELECT 1``) and of ``engine.connect()`` at 1 to 1000 tasks, in
  interleaved slices (as scenario 2), with the ratio mysqlpool / plain taken
  within each repetition;
- ``sqlalchemy_fairness``: 1000 tasks on 10 connections through
  ``engine.connect()``, until 5 checkouts per task are granted;
- ``sqlalchemy_statements``: statements per AsyncSession read, AsyncSession
  commit and ``engine.connect()`` read, from the session's own counters.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Any

from scenarios import (
    Config,
    Job,
    Scenario,
    fmt,
    make,
    md_table,
    median,
    pct,
    perf,
    rotated,
    throughput_group,
)

#: (plain SQLAlchemy, the same on mysqlpool), per way of using it.
PAIRS = {
    "AsyncSession reads": ("sqlalchemy-session", "mysqlpool-session"),
    "engine.connect()": ("sqlalchemy-engine", "mysqlpool-engine"),
}
IMPLS = tuple(impl for pair in PAIRS.values() for impl in pair)


def _with(cfg: Config, impls: tuple[str, ...]) -> Config:
    return Config(dsn=cfg.dsn, quick=cfg.quick, reps=cfg.reps, impls=impls,
                  pool_size=cfg.pool_size)


def throughput_jobs(cfg: Config) -> list[Job]:
    slices, slice_dur = (2, 0.075) if cfg.quick else (4, 0.25)
    concurrency = (1, 10, 100) if cfg.quick else (1, 10, 100, 1000)
    jobs = []
    for rep in range(cfg.reps):
        for tasks in concurrency:

            async def run(tasks: int = tasks, rep: int = rep) -> dict[str, Any]:
                return await throughput_group(cfg, IMPLS, tasks, slices, slice_dur, rep)

            jobs.append(Job("sqlalchemy", rep, "all", {"tasks": tasks}, run))
    return jobs


def throughput_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    concs = sorted({j.params["tasks"] for j in jobs})
    data: dict[str, dict[str, dict[str, float]]] = {}
    rows, cpu_rows = [], []
    for use, (plain, ours) in PAIRS.items():
        data[use] = {}
        cells, cpu_cells = [], []
        for c in concs:
            mine = [j.result["per_impl"] for j in jobs if j.params["tasks"] == c]
            ratios = [r[ours]["qps"] / r[plain]["qps"] for r in mine]
            # Client CPU per operation is far steadier than q/s on a shared machine.
            cpu_ratios = [r[plain]["cpu_us"] / r[ours]["cpu_us"] for r in mine]
            d = data[use][str(c)] = {
                "plain_qps": median([r[plain]["qps"] for r in mine]),
                "mysqlpool_qps": median([r[ours]["qps"] for r in mine]),
                "ratio": median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "plain_cpu_us": median([r[plain]["cpu_us"] for r in mine]),
                "mysqlpool_cpu_us": median([r[ours]["cpu_us"] for r in mine]),
                "cpu_ratio": median(cpu_ratios),
            }
            cells.append(f"{d['plain_qps']:,.0f} → {d['mysqlpool_qps']:,.0f} "
                         f"(**{d['ratio']:.2f}x**, {d['ratio_min']:.2f}-{d['ratio_max']:.2f})")
            cpu_cells.append(f"{d['plain_cpu_us']:,.0f} → {d['mysqlpool_cpu_us']:,.0f} "
                             f"(**{d['cpu_ratio']:.2f}x**)")
        rows.append([use, *cells])
        cpu_rows.append([use, *cpu_cells])
    table = md_table(["operation", *(f"{c} tasks: q/s plain → on mysqlpool (ratio)"
                                     for c in concs)], rows)
    cpu_table = md_table(["operation", *(f"{c} tasks: client CPU µs/op plain → on mysqlpool "
                                         "(plain / on mysqlpool)" for c in concs)], cpu_rows)
    note = ("Ratio: on mysqlpool / plain SQLAlchemy within each repetition, median "
            "(range over repetitions). Client CPU: `time.process_time()` over the same "
            "slices per operation, median; the ratio (plain / on mysqlpool, above 1 when "
            "mysqlpool is cheaper) taken within each repetition.")
    return {"data": data, "table": f"{table}\n\n{cpu_table}\n\n{note}"}


async def fairness_run(cfg: Config, impl: str, tasks: int, rounds: int) -> dict[str, Any]:
    """``tasks`` tasks loop checkout -> SELECT 1 -> return until ``tasks * rounds``
    grants are made: a count, not a duration, so a loaded machine slows the run
    down without changing what a fair pool gives (``rounds`` grants each)."""
    a = make(cfg, impl)
    await a.open()
    try:
        await a.warm(cfg.pool_size)
        total = tasks * rounds
        grants = [0] * tasks
        waits: list[float] = []
        seq = granted = overtaken = 0
        pending: set[int] = set()
        heap: list[int] = []

        async def worker(i: int) -> None:
            nonlocal seq, granted, overtaken
            while granted < total:
                mine = seq
                seq += 1
                pending.add(mine)
                heapq.heappush(heap, mine)
                asked = perf()
                async with a.acquire() as conn:
                    waits.append(perf() - asked)
                    pending.discard(mine)
                    while heap and heap[0] not in pending:
                        heapq.heappop(heap)
                    if granted < total:
                        granted += 1
                        grants[i] += 1
                        if heap and heap[0] < mine:
                            overtaken += 1  # someone who asked earlier is still waiting
                    await a.query(conn)

        t0 = perf()
        await asyncio.gather(*(worker(i) for i in range(tasks)))
        secs = perf() - t0
    finally:
        await a.close()
    squares = sum(g * g for g in grants)
    return {
        "p50_ms": pct(waits, 0.5) * 1e3,
        "p99_ms": pct(waits, 0.99) * 1e3,
        "max_ms": max(waits) * 1e3,
        "overtaken": overtaken / granted,
        "jain": total * total / (tasks * squares),
        "never_served": sum(1 for g in grants if g == 0),
        "most_served": max(grants),
        "grants": granted,
        "seconds": secs,
    }


def fairness_jobs_sa(cfg: Config) -> list[Job]:
    tasks, rounds = 1000, (2 if cfg.quick else 5)
    jobs = []
    for rep in range(cfg.reps):
        for impl in rotated(list(PAIRS["engine.connect()"]), rep):

            async def run(impl: str = impl) -> dict[str, Any]:
                return await fairness_run(cfg, impl, tasks, rounds)

            jobs.append(Job("sqlalchemy_fairness", rep, impl, {"tasks": tasks, "rounds": rounds},
                            run))
    return jobs


def fairness_summary_sa(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    impls = list(dict.fromkeys(j.impl for j in jobs))
    keys = ("p50_ms", "p99_ms", "max_ms", "overtaken", "jain", "never_served", "most_served",
            "grants")
    data: dict[str, dict[str, float]] = {}
    for impl in impls:
        mine = [j.result for j in jobs if j.impl == impl]
        data[impl] = {k: median([r[k] for r in mine]) for k in keys}
        data[impl]["jain_min"] = min(r["jain"] for r in mine)
    rows = [
        [
            impl,
            fmt(d["p50_ms"], 1),
            fmt(d["p99_ms"], 1),
            fmt(d["max_ms"], 1),
            f"{d['overtaken'] * 100:.1f}%",
            f"{fmt(d['jain'], 4)} (min {fmt(d['jain_min'], 4)})",
            f"{d['never_served']:.0f}",
            f"{d['most_served']:.0f}",
        ]
        for impl, d in data.items()
    ]
    headers = ["implementation", "p50 wait (ms)", "p99 (ms)", "max (ms)", "overtaken",
               "Jain", "never served", "most grants to one task"]
    return {"data": data, "table": md_table(headers, rows)}


SESSION_VARS = ("Questions", "Com_select", "Com_commit", "Com_rollback")

#: What one operation is, by name: (how the engine is used, the statement).
OPERATIONS = {
    "AsyncSession read": "session-read",
    "AsyncSession commit": "session-commit",
    "engine.connect() read": "connect-read",
}


async def _session_counters(engine: Any) -> dict[str, int]:
    """The counters of the one pooled session, read on it through the engine's pool."""
    from sqlalchemy.util import greenlet_spawn

    fairy = await engine.raw_connection()
    try:
        async with fairy.driver_connection.cursor() as cur:
            names = ",".join(f"'{v}'" for v in SESSION_VARS)
            await cur.execute(f"SHOW SESSION STATUS WHERE Variable_name IN ({names})")
            return {name: int(value) for name, value in await cur.fetchall()}
    finally:
        await greenlet_spawn(fairy.close)


async def statements_run(cfg: Config, on_mysqlpool: bool, operation: str, ops: int
                         ) -> dict[str, Any]:
    """Statements per operation on a pool of one, from that session's own counters
    (other clients of the server don't count; reading them is measured and taken off)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker

    impl = "mysqlpool-session" if on_mysqlpool else "sqlalchemy-session"
    a = make(cfg, impl, 1)
    await a.open()
    engine = a.engine  # type: ignore[attr-defined]
    sessions = async_sessionmaker(engine)
    select1 = text("SELECT 1")

    async def one() -> None:
        if operation == "connect-read":
            async with engine.connect() as conn:
                (await conn.execute(select1)).fetchall()
            return
        async with sessions() as session:
            (await session.execute(select1)).fetchall()
            if operation == "session-commit":
                await session.commit()

    try:
        await one()  # first-use queries (the dialect's initialize) happen here
        s0 = await _session_counters(engine)
        s1 = await _session_counters(engine)
        for _ in range(ops):
            await one()
        s2 = await _session_counters(engine)
    finally:
        await a.close()
    return {v: ((s2[v] - s1[v]) - (s1[v] - s0[v])) / ops for v in SESSION_VARS}


def statements_jobs_sa(cfg: Config) -> list[Job]:
    ops = 50 if cfg.quick else 500
    jobs = []
    for rep in range(cfg.reps):
        for label, operation in OPERATIONS.items():
            for on_mysqlpool in (False, True):
                impl = "mysqlpool" if on_mysqlpool else "sqlalchemy"

                async def run(on: bool = on_mysqlpool, op: str = operation) -> dict[str, Any]:
                    return await statements_run(cfg, on, op, ops)

                jobs.append(Job("sqlalchemy_statements", rep, impl, {"operation": label}, run))
    return jobs


def statements_summary_sa(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    data: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for label in OPERATIONS:
        data[label] = {}
        for impl in ("sqlalchemy", "mysqlpool"):
            mine = [j.result for j in jobs if j.impl == impl and j.params["operation"] == label]
            if not mine:
                continue
            d = data[label][impl] = {v: median([r[v] for r in mine]) for v in SESSION_VARS}
            name = "plain SQLAlchemy" if impl == "sqlalchemy" else "on mysqlpool"
            rows.append([label, name, *(fmt(d[v], 2) for v in SESSION_VARS)])
    table = md_table(["operation", "pool", *(f"{v}/op" for v in SESSION_VARS)], rows)
    return {"data": data, "table": table}


SA_NOTES = {
    "sqlalchemy": "Plain: `sqlalchemy.ext.asyncio.create_async_engine` (AsyncAdaptedQueuePool); "
    "on mysqlpool: `mysqlpool.sqlalchemy.create_async_engine`, same URL and arguments "
    "(`pool_size=10, max_overflow=0`). *AsyncSession reads*: `async with sessionmaker() as "
    "session: await session.execute(text('SELECT 1'))`; *engine.connect()*: the same "
    "through `async with engine.connect() as conn`. All four engines stay open and take "
    "turns in slices (4 x 0.25 s, rotating order) within each repetition.",
    "sqlalchemy_fairness": "1000 tasks loop `async with engine.connect()` → SELECT 1 until "
    "5 x 1000 checkouts are granted (a count, not a duration: a loaded machine slows the "
    "run but doesn't change what a fair pool hands out, 5 each). Jain's index over the "
    "per-task counts, median over repetitions (and the lowest); *overtaken*: grants made "
    "while a task that asked earlier was still waiting.",
    "sqlalchemy_statements": "Statements the server counted per operation, on an engine "
    "with a pool of one: that session's own counters (`SHOW SESSION STATUS`, read through "
    "the engine's pool; what the read costs is measured and taken off), so other clients "
    "of a shared server don't count. 500 operations per repetition.",
}

SA_SCENARIOS = (
    Scenario("sqlalchemy", "9. SQLAlchemy on mysqlpool vs plain: AsyncSession reads and "
             "engine.connect(), pool of 10", throughput_jobs, throughput_summary),
    Scenario("sqlalchemy_fairness", "10. SQLAlchemy on mysqlpool vs plain: fairness, "
             "1000 tasks on 10 connections through engine.connect(), 5000 checkouts",
             fairness_jobs_sa, fairness_summary_sa),
    Scenario("sqlalchemy_statements", "11. SQLAlchemy on mysqlpool vs plain: statements "
             "per operation (the session's own counters)", statements_jobs_sa,
             statements_summary_sa),
)
