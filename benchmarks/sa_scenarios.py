"""SQLAlchemy on mysqlpool beside plain SQLAlchemy, in the same run.

Three scenarios, each comparing ``create_async_engine`` with SQLAlchemy's
own pool (``AsyncAdaptedQueuePool``) and ``mysqlpool.sqlalchemy``'s, same
URL, ``pool_size=10, max_overflow=0``:

- ``sqlalchemy``: throughput of AsyncSession reads (a session per operation,
  ``SELECT 1``) and of ``engine.connect()`` at 1 to 1000 tasks, in
  interleaved slices (as scenario 2), with the ratio mysqlpool / plain taken
  within each repetition;
- ``sqlalchemy_fairness``: 1000 tasks on 10 connections through
  ``engine.connect()`` (as scenario 3);
- ``sqlalchemy_statements``: statements per AsyncSession read, AsyncSession
  commit and ``engine.connect()`` read, from the session's own counters.
"""

from __future__ import annotations

from typing import Any

from scenarios import (
    Config,
    Job,
    Scenario,
    fairness_jobs,
    fairness_summary,
    fmt,
    make,
    md_table,
    median,
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
    rows = []
    for use, (plain, ours) in PAIRS.items():
        data[use] = {}
        cells = []
        for c in concs:
            mine = [j.result["per_impl"] for j in jobs if j.params["tasks"] == c]
            ratios = [r[ours]["qps"] / r[plain]["qps"] for r in mine]
            d = data[use][str(c)] = {
                "plain_qps": median([r[plain]["qps"] for r in mine]),
                "mysqlpool_qps": median([r[ours]["qps"] for r in mine]),
                "ratio": median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
            cells.append(f"{d['plain_qps']:,.0f} → {d['mysqlpool_qps']:,.0f} "
                         f"(**{d['ratio']:.2f}x**, {d['ratio_min']:.2f}-{d['ratio_max']:.2f})")
        rows.append([use, *cells])
    table = md_table(["operation", *(f"{c} tasks: q/s plain → on mysqlpool (ratio)"
                                     for c in concs)], rows)
    note = ("Ratio: on mysqlpool / plain SQLAlchemy within each repetition, median "
            "(range over repetitions).")
    return {"data": data, "table": f"{table}\n\n{note}"}


def fairness_jobs_sa(cfg: Config) -> list[Job]:
    jobs = fairness_jobs(_with(cfg, PAIRS["engine.connect()"]))
    for job in jobs:
        job.scenario = "sqlalchemy_fairness"
    return jobs


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
    "sqlalchemy_fairness": "As scenario 3, through `async with engine.connect()`: the wait "
    "is the checkout.",
    "sqlalchemy_statements": "Statements the server counted per operation, on an engine "
    "with a pool of one: that session's own counters (`SHOW SESSION STATUS`, read through "
    "the engine's pool; what the read costs is measured and taken off), so other clients "
    "of a shared server don't count. 500 operations per repetition.",
}

SA_SCENARIOS = (
    Scenario("sqlalchemy", "9. SQLAlchemy on mysqlpool vs plain: AsyncSession reads and "
             "engine.connect(), pool of 10", throughput_jobs, throughput_summary),
    Scenario("sqlalchemy_fairness", "10. SQLAlchemy on mysqlpool vs plain: fairness, "
             "1000 tasks on 10 connections through engine.connect()",
             fairness_jobs_sa, fairness_summary),
    Scenario("sqlalchemy_statements", "11. SQLAlchemy on mysqlpool vs plain: statements "
             "per operation (the session's own counters)", statements_jobs_sa,
             statements_summary_sa),
)
