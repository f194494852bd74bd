"""The benchmark scenarios: each builds a list of jobs and summarizes their results.

A job measures one implementation once (one repetition, one configuration) in
a fresh pool and returns a dict of numbers. ``run.py`` runs the jobs of every
repetition in turn (rep 1 runs every implementation, then rep 2, ...), so
ratios are taken within a repetition, against that repetition's reference,
and the median of the ratios is reported.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import heapq
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomysql
from adapters import ADAPTERS, Adapter, connect_kwargs, cursor_query

perf = time.perf_counter
cpu_time = time.process_time  # this process's CPU (user + system), all threads

POOL_IMPLS = (
    "mysqlpool",
    "aiomysql",
    "sqlalchemy-engine",
    "sqlalchemy-pool",
    "asyncmy",
    "raw-fifo",
    "mysqlpool-asyncmy",
    "raw-fifo-asyncmy",
)
ALL_IMPLS = (*POOL_IMPLS, "connect-per-request", "raw-dedicated", "raw-dedicated-asyncmy")


def is_dedicated(impl: str) -> bool:
    """``impl`` owns its connections (no acquire): a raw-dedicated reference."""
    return ADAPTERS[impl].dedicated
SLOW_INIT = "DO SLEEP(0.02)"
STATUS_VARS = ("Questions", "Com_select", "Com_rollback", "Com_admin_commands", "Connections")


@dataclass
class Config:
    dsn: str
    quick: bool
    reps: int
    impls: Sequence[str] = ALL_IMPLS
    pool_size: int = 10

    def d(self, full: float, quick: float) -> float:
        return quick if self.quick else full


@dataclass
class Job:
    scenario: str
    rep: int
    impl: str
    params: dict[str, Any]
    run: Callable[[], Awaitable[dict[str, Any]]]
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.scenario} rep {self.rep + 1} {self.impl} {extra}".strip()


def rotated(impls: Sequence[str], rep: int) -> list[str]:
    """The implementations, in an order rotated by one per repetition."""
    k = rep % len(impls) if impls else 0
    return [*impls[k:], *impls[:k]]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def server_status(mon: Any) -> dict[str, int]:
    async with mon.cursor() as cur:
        names = ",".join(f"'{v}'" for v in STATUS_VARS)
        await cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
        return {name: int(value) for name, value in await cur.fetchall()}


async def monitor(dsn: str) -> Any:
    return await aiomysql.connect(**connect_kwargs(dsn))


def make(cfg: Config, impl: str, size: int | None = None, **extra: Any) -> Adapter:
    return ADAPTERS[impl](cfg.dsn, size or cfg.pool_size, **extra)


async def run_workers(a: Adapter, tasks: int, body: Callable[[Any], Awaitable[None]] | None,
                      duration: float) -> tuple[int, float]:
    """``tasks`` tasks loop acquire (+ body) until the deadline; returns (ops, seconds).

    A dedicated adapter runs ``min(tasks, size)`` workers, each on its own connection.
    """
    t0 = perf()
    deadline = t0 + duration

    async def pooled() -> int:
        n = 0
        acquire = a.acquire
        while perf() < deadline:
            async with acquire() as conn:
                if body is not None:
                    await body(conn)
            n += 1
        return n

    async def dedicated(conn: Any) -> int:
        n = 0
        while perf() < deadline:
            if body is not None:
                await body(conn)
            n += 1
        return n

    if a.dedicated:
        conns = a.conns[: min(tasks, len(a.conns))]  # type: ignore[attr-defined]
        counts = await asyncio.gather(*(dedicated(c) for c in conns))
    else:
        counts = await asyncio.gather(*(pooled() for _ in range(tasks)))
    return sum(counts), perf() - t0


# ---------------------------------------------------------------- 1 overhead


def overhead_jobs(cfg: Config) -> list[Job]:
    dur = cfg.d(0.4, 0.1)
    configs = [("1 task", 1, 10), ("100 tasks on 10", 100, 10), ("1 task, 100 idle", 1, 100)]
    impls = [i for i in cfg.impls if not is_dedicated(i)]
    jobs = []
    for rep in range(cfg.reps):
        for label, tasks, size in configs:
            for impl in rotated(impls, rep):
                if impl == "connect-per-request" and size == 100:
                    continue

                async def run(
                    impl: str = impl, tasks: int = tasks, size: int = size
                ) -> dict[str, Any]:
                    a = make(cfg, impl, size)
                    await a.open()
                    try:
                        await a.warm(size)
                        await run_workers(a, tasks, None, dur / 10)  # warm the code paths
                        ops, secs = await run_workers(a, tasks, None, dur)
                    finally:
                        await a.close()
                    return {"us": secs / ops * 1e6, "ops": ops}

                jobs.append(Job("overhead", rep, impl, {"config": label}, run))
    return jobs


def overhead_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    configs = list(dict.fromkeys(j.params["config"] for j in jobs))
    impls = list(dict.fromkeys(j.impl for j in jobs))
    data: dict[str, dict[str, float]] = {}
    for impl in impls:
        data[impl] = {}
        for c in configs:
            vals = [j.result["us"] for j in jobs if j.impl == impl and j.params["config"] == c]
            if vals:
                data[impl][c] = median(vals)
    rows = [[impl, *(fmt(data[impl].get(c), 2) for c in configs)] for impl in impls]
    table = md_table(["implementation", *(f"{c} (µs)" for c in configs)], rows)
    return {"data": data, "table": table}


# -------------------------------------------------------------- 2 throughput


async def throughput_group(cfg: Config, impls: Sequence[str], tasks: int, slices: int,
                           slice_dur: float, rep: int) -> dict[str, Any]:
    """Every implementation at ``tasks`` concurrent tasks, in round-robin slices.

    All pools stay open (and warm) for the whole group; each runs ``slices``
    slices of ``slice_dur`` seconds, taking turns in a rotating order, so a
    burst of outside load hits every implementation alike and the ratios to
    raw-dedicated compare the same moments.
    """
    adapters: dict[str, Adapter] = {}
    try:
        for impl in impls:
            a = make(cfg, impl)
            adapters[impl] = a
            await a.open()
            await a.warm(cfg.pool_size)
            await run_workers(a, tasks, a.query, slice_dur / 5)  # warm the code paths
        ops = dict.fromkeys(impls, 0)
        secs = dict.fromkeys(impls, 0.0)
        cpu = dict.fromkeys(impls, 0.0)
        for k in range(slices):
            for impl in rotated(impls, rep + k):
                a = adapters[impl]
                c0 = cpu_time()
                n, t = await run_workers(a, tasks, a.query, slice_dur)
                cpu[impl] += cpu_time() - c0
                ops[impl] += n
                secs[impl] += t
    finally:
        for a in adapters.values():
            await a.close()
    return {"per_impl": {i: {"qps": ops[i] / secs[i], "ops": ops[i],
                             "cpu_us": cpu[i] / ops[i] * 1e6 if ops[i] else float("nan")}
                         for i in impls}}


def throughput_jobs(cfg: Config, scenario: str = "throughput",
                    concurrency: Sequence[int] | None = None) -> list[Job]:
    slices, slice_dur = (2, 0.075) if cfg.quick else (4, 0.25)
    if concurrency is None:
        concurrency = (1, 10, 100) if cfg.quick else (1, 10, 100, 1000)
    jobs = []
    for rep in range(cfg.reps):
        for tasks in concurrency:

            async def run(tasks: int = tasks, rep: int = rep) -> dict[str, Any]:
                return await throughput_group(cfg, cfg.impls, tasks, slices, slice_dur, rep)

            jobs.append(Job(scenario, rep, "all", {"tasks": tasks}, run))
    return jobs


def throughput_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    concs = sorted({j.params["tasks"] for j in jobs})
    impls = list(dict.fromkeys(i for j in jobs for i in j.result["per_impl"]))
    data: dict[str, dict[str, dict[str, float]]] = {}
    for impl in impls:
        data[impl] = {}
        for c in concs:
            mine = [j.result["per_impl"] for j in jobs
                    if j.params["tasks"] == c and impl in j.result["per_impl"]]
            if not mine:
                continue
            ratios = [r[impl]["qps"] / r["raw-dedicated"]["qps"] for r in mine
                      if "raw-dedicated" in r]
            # CPU per query, and the same minus raw-dedicated's (the pool's own
            # cost), each difference taken within one repetition.
            cpus = [r[impl]["cpu_us"] for r in mine if "cpu_us" in r[impl]]
            extra = [r[impl]["cpu_us"] - r["raw-dedicated"]["cpu_us"] for r in mine
                     if "cpu_us" in r[impl] and "cpu_us" in r.get("raw-dedicated", {})]
            data[impl][str(c)] = {
                "qps": median([r[impl]["qps"] for r in mine]),
                "ratio": median(ratios),
                "cpu_us": median(cpus),
                "cpu_extra_us": median(extra),
            }
    rows, cpu_rows = [], []
    for impl in impls:
        cells, cpu_cells = [], []
        for c in concs:
            d = data[impl].get(str(c))
            cells.append("—" if d is None else f"{d['qps']:,.0f} ({d['ratio']:.2f})")
            cpu_cells.append("—" if d is None else
                             f"{fmt(d['cpu_us'], 1)} ({d['cpu_extra_us']:+.1f})")
        rows.append([impl, *cells])
        cpu_rows.append([impl, *cpu_cells])
    table = md_table(["implementation", *(f"{c} tasks q/s (x raw-dedicated)" for c in concs)], rows)
    cpu_table = md_table(
        ["implementation", *(f"{c} tasks: CPU µs/query (vs raw-dedicated)" for c in concs)],
        cpu_rows)
    text = (f"{table}\n\nClient CPU per query: `time.process_time()` of the benchmark "
            "process over the same slices, divided by the queries (median; in brackets the "
            "median per-repetition difference to raw-dedicated, i.e. what the pool itself "
            f"costs per query).\n\n{cpu_table}")
    return {"data": data, "table": text}


# --------------------------------------------------------------- 3 fairness


async def fairness_run(cfg: Config, impl: str, tasks: int, dur: float) -> dict[str, Any]:
    a = make(cfg, impl)
    await a.open()
    try:
        await a.warm(cfg.pool_size)
        seq = 0
        pending: set[int] = set()
        heap: list[int] = []
        waits: list[float] = []
        grants = [0] * tasks
        overtaken = 0
        granted = 0
        t0 = perf()
        deadline = t0 + dur

        async def worker(i: int) -> None:
            nonlocal seq, overtaken, granted
            acquire, query = a.acquire, a.query
            while perf() < deadline:
                mine = seq
                seq += 1
                pending.add(mine)
                heapq.heappush(heap, mine)
                asked = perf()
                async with acquire() as conn:
                    got = perf()
                    pending.discard(mine)
                    while heap and heap[0] not in pending:
                        heapq.heappop(heap)
                    waits.append(got - asked)
                    if got < deadline:
                        granted += 1
                        grants[i] += 1
                        if heap and heap[0] < mine:
                            overtaken += 1  # someone who asked earlier is still waiting
                    await query(conn)

        await asyncio.gather(*(worker(i) for i in range(tasks)))
    finally:
        await a.close()
    total = sum(grants)
    squares = sum(g * g for g in grants)
    return {
        "p50_ms": pct(waits, 0.5) * 1e3,
        "p99_ms": pct(waits, 0.99) * 1e3,
        "max_ms": max(waits) * 1e3,
        "overtaken": overtaken / granted if granted else float("nan"),
        "jain": total * total / (tasks * squares) if squares else float("nan"),
        "never_served": sum(1 for g in grants if g == 0),
        "grants": granted,
        "waits": waits,
    }


def fairness_jobs(cfg: Config) -> list[Job]:
    dur = cfg.d(2.0, 0.5)
    tasks = 1000
    impls = [i for i in cfg.impls if not is_dedicated(i)]
    jobs = []
    for rep in range(cfg.reps):
        for impl in rotated(impls, rep):

            async def run(impl: str = impl) -> dict[str, Any]:
                return await fairness_run(cfg, impl, tasks, dur)

            jobs.append(Job("fairness", rep, impl, {"tasks": tasks}, run))
    return jobs


def fairness_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    impls = list(dict.fromkeys(j.impl for j in jobs))
    keys = ("p50_ms", "p99_ms", "max_ms", "overtaken", "jain", "never_served", "grants")
    data: dict[str, dict[str, float]] = {}
    for impl in impls:
        mine = [j.result for j in jobs if j.impl == impl]
        data[impl] = {k: median([r[k] for r in mine]) for k in keys}
        data[impl]["p99_over_p50"] = median([r["p99_ms"] / r["p50_ms"] for r in mine])
    rows = [
        [
            impl,
            fmt(d["p50_ms"], 1),
            fmt(d["p99_ms"], 1),
            fmt(d["max_ms"], 1),
            fmt(d["p99_over_p50"], 2),
            f"{d['overtaken'] * 100:.1f}%",
            fmt(d["jain"], 3),
            f"{d['never_served']:.0f}",
            f"{d['grants']:.0f}",
        ]
        for impl, d in data.items()
    ]
    headers = ["implementation", "p50 wait (ms)", "p99 (ms)", "max (ms)", "p99/p50",
               "overtaken", "Jain", "never served", "grants"]
    return {"data": data, "table": md_table(headers, rows)}


# ------------------------------------------------------------- 4 cold start


async def cold_run(cfg: Config, impl: str, init: str | None, acquires: int, size: int
                   ) -> dict[str, Any]:
    extra = {"init_command": init} if init else {}
    mon = await monitor(cfg.dsn)
    a = make(cfg, impl, size, **extra)
    try:
        await a.open()
        before = await server_status(mon)
        t0 = perf()
        if a.dedicated:  # raw parallel opening: `size` connects at once, then the ops
            await a.warm(size)
            per = acquires // size
            await asyncio.gather(*(_loop_query(a, c, per) for c in a.conns))  # type: ignore[attr-defined]
        else:

            async def one() -> None:
                async with a.acquire() as conn:
                    await a.query(conn)

            await asyncio.gather(*(one() for _ in range(acquires)))
        secs = perf() - t0
        after = await server_status(mon)
        own = a.connections_opened()
    finally:
        await a.close()
        mon.close()
    return {"ms": secs * 1e3, "opened": after["Connections"] - before["Connections"],
            "opened_self": own}


async def _loop_query(a: Adapter, conn: Any, n: int) -> None:
    for _ in range(n):
        await a.query(conn)


def cold_jobs(cfg: Config) -> list[Job]:
    impls = [i for i in cfg.impls if i != "connect-per-request"]
    jobs = []
    for rep in range(cfg.reps):
        for label, init in (("loopback", None), ("20 ms connect", SLOW_INIT)):
            for impl in rotated(impls, rep):

                async def run(impl: str = impl, init: str | None = init) -> dict[str, Any]:
                    return await cold_run(cfg, impl, init, 100, 20)

                jobs.append(Job("cold", rep, impl, {"connect": label}, run))
    return jobs


def cold_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    impls = list(dict.fromkeys(j.impl for j in jobs))
    labels = list(dict.fromkeys(j.params["connect"] for j in jobs))
    ref = {(j.rep, j.params["connect"]): j.result["ms"] for j in jobs if j.impl == "raw-dedicated"}
    data: dict[str, dict[str, dict[str, float]]] = {}
    for impl in impls:
        data[impl] = {}
        for lab in labels:
            mine = [j for j in jobs if j.impl == impl and j.params["connect"] == lab]
            ratios = [j.result["ms"] / ref[(j.rep, lab)] for j in mine if (j.rep, lab) in ref]
            data[impl][lab] = {
                "ms": median([j.result["ms"] for j in mine]),
                "ratio": median(ratios),
                "opened": median([j.result["opened"] for j in mine]),
            }
    rows = []
    for impl in impls:
        name = "raw parallel opening" if impl == "raw-dedicated" else impl
        cells = []
        for lab in labels:
            d = data[impl][lab]
            cells += [fmt(d["ms"], 1), fmt(d["ratio"], 2), f"{d['opened']:.0f}"]
        rows.append([name, *cells])
    headers = ["implementation"]
    for lab in labels:
        headers += [f"{lab}: ms", "x raw", "opened"]
    return {"data": data, "table": md_table(headers, rows)}


# ---------------------------------------------------------- 5 statements/op


async def statements_run(cfg: Config, impl: str, ops: int) -> dict[str, Any]:
    mon = await monitor(cfg.dsn)
    a = make(cfg, impl)
    tasks = cfg.pool_size
    per = ops // tasks

    async def worker(conn: Any = None) -> None:
        for _ in range(per):
            if conn is not None:
                await a.query(conn)
            else:
                async with a.acquire() as c:
                    await a.query(c)

    async def all_ops() -> None:
        if a.dedicated:
            await asyncio.gather(*(worker(c) for c in a.conns))  # type: ignore[attr-defined]
        else:
            await asyncio.gather(*(worker() for _ in range(tasks)))

    try:
        await a.open()
        await a.warm(cfg.pool_size)
        await all_ops()  # warm: first-use queries (wait_timeout, dialect init) happen here
        s0 = await server_status(mon)
        s1 = await server_status(mon)  # the monitor's own cost
        await all_ops()
        s2 = await server_status(mon)
    finally:
        await a.close()
        mon.close()
    n = per * tasks
    return {v: ((s2[v] - s1[v]) - (s1[v] - s0[v])) / n for v in STATUS_VARS if v != "Connections"}


def statements_jobs(cfg: Config) -> list[Job]:
    ops = 200 if cfg.quick else 2000
    jobs = []
    for rep in range(cfg.reps):
        for impl in rotated(list(cfg.impls), rep):

            async def run(impl: str = impl) -> dict[str, Any]:
                return await statements_run(cfg, impl, ops)

            jobs.append(Job("statements", rep, impl, {"ops": ops}, run))
    return jobs


def statements_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    impls = list(dict.fromkeys(j.impl for j in jobs))
    cols = [v for v in STATUS_VARS if v != "Connections"]
    data = {impl: {v: median([j.result[v] for j in jobs if j.impl == impl]) for v in cols}
            for impl in impls}
    rows = [[impl, *(fmt(data[impl][v], 2) for v in cols)] for impl in impls]
    return {"data": data, "table": md_table(["implementation", *(f"{v}/op" for v in cols)], rows)}


# ------------------------------------------------------------------ 6 uvloop


def uvloop_jobs(cfg: Config) -> list[Job]:
    return throughput_jobs(cfg, "uvloop", (100,))


# ------------------------------------------------------------------ 7 memory


async def _bare(cfg: Config, driver: str, n: int) -> list[Any]:
    kw = connect_kwargs(cfg.dsn)
    if driver == "asyncmy":
        import asyncmy
        from adapters import asyncmy_kwargs

        kw = asyncmy_kwargs(kw)
        conns = list(await asyncio.gather(*(asyncmy.connect(**kw) for _ in range(n))))
    else:
        conns = list(await asyncio.gather(*(aiomysql.connect(**kw) for _ in range(n))))
    for conn in conns:  # the same state as a pooled connection that has served a query
        await cursor_query(conn)
    return conns


async def _traced(build: Callable[[], Awaitable[Any]],
                  teardown: Callable[[Any], Awaitable[None]]) -> int:
    gc.collect()
    m0 = tracemalloc.get_traced_memory()[0]
    obj = await build()
    gc.collect()
    m1 = tracemalloc.get_traced_memory()[0]
    await teardown(obj)
    return m1 - m0


async def memory_run(cfg: Config, impl: str) -> dict[str, Any]:
    driver = ADAPTERS[impl].driver

    async def build_bare(n: int) -> Any:
        return await _bare(cfg, driver, n)

    async def close_bare(conns: Any) -> None:
        for c in conns:
            c.close()

    async def build_pool(n: int) -> Any:
        a = make(cfg, impl, n)
        await a.open()
        await a.warm(n)
        return a

    async def close_pool(a: Any) -> None:
        await a.close()

    tracemalloc.start()
    try:
        per: dict[str, float] = {}
        for what, build, teardown in ((impl, build_pool, close_pool),
                                      ("bare", build_bare, close_bare)):
            sizes = {}
            for n in (10, 100):
                if n == 10:  # a first pass, not kept: one-time costs (imports, caches)
                    await _traced(functools.partial(build, n), teardown)
                sizes[n] = await _traced(functools.partial(build, n), teardown)
            per[what] = (sizes[100] - sizes[10]) / 90
    finally:
        tracemalloc.stop()
    return {"per_conn": per[impl], "bare": per["bare"], "added": per[impl] - per["bare"]}


def memory_jobs(cfg: Config) -> list[Job]:
    impls = [i for i in cfg.impls if i != "connect-per-request" and not is_dedicated(i)]
    reps = max(1, min(cfg.reps, 3))
    jobs = []
    for rep in range(reps):
        for impl in rotated(impls, rep):

            async def run(impl: str = impl) -> dict[str, Any]:
                return await memory_run(cfg, impl)

            jobs.append(Job("memory", rep, impl, {}, run))
    return jobs


def memory_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    impls = list(dict.fromkeys(j.impl for j in jobs))
    keys = ("per_conn", "bare", "added")
    data = {impl: {k: median([j.result[k] for j in jobs if j.impl == impl]) for k in keys}
            for impl in impls}
    rows = [[impl, f"{d['per_conn']:,.0f}", f"{d['bare']:,.0f}", f"{d['added']:,.0f}"]
            for impl, d in data.items()]
    headers = ["implementation", "bytes per idle connection", "bare driver connection",
               "added by the pool"]
    return {"data": data, "table": md_table(headers, rows)}


# ----------------------------------------------------------------- 8 pre_ping

#: (label, adapter, pool options, label of the same adapter with pre-ping off)
PREPING_VARIANTS = (
    ("mysqlpool pre_ping=False", "mysqlpool", {"pre_ping": False}, None),
    ("mysqlpool pre_ping=True", "mysqlpool", {"pre_ping": True}, "mysqlpool pre_ping=False"),
    ("sqlalchemy-pool pool_pre_ping=False", "sqlalchemy-pool", {"pool_pre_ping": False}, None),
    ("sqlalchemy-pool pool_pre_ping=True", "sqlalchemy-pool", {"pool_pre_ping": True},
     "sqlalchemy-pool pool_pre_ping=False"),
)
PREPING_IDLE = 1.2  # seconds between idle rounds: past mysqlpool's default 1 s threshold
PREPING_SIZE = 2  # pool for the ping counts


async def admin_commands(conn: Any) -> int:
    """This session's ``Com_admin_commands`` (COM_PING among others), read on ``conn``.

    SHOW STATUS is a COM_QUERY, so reading the counter does not move it.
    """
    async with conn.cursor() as cur:
        await cur.execute("SHOW SESSION STATUS LIKE 'Com_admin_commands'")
        (_, value) = await cur.fetchone()
    return int(value)


class PingCounter:
    """Pings per acquire from per-session counter deltas, read before each release."""

    def __init__(self) -> None:
        self.last: dict[int, int] = {}  # id(conn) -> counter at its last checkout
        self.pings = 0
        self.acquires = 0

    async def observe(self, conn: Any, count: bool = True) -> None:
        value = await admin_commands(conn)
        prev = self.last.get(id(conn))
        self.last[id(conn)] = value
        if count and prev is not None:
            self.pings += value - prev
            self.acquires += 1

    def take(self) -> float:
        rate = self.pings / self.acquires if self.acquires else float("nan")
        self.pings = self.acquires = 0
        return rate


async def _all_at_once(a: Adapter, n: int, counter: PingCounter, count: bool) -> None:
    """``n`` tasks hold ``n`` connections at once, each reading its counter."""
    held = 0
    gate = asyncio.Event()

    async def one() -> None:
        nonlocal held
        async with a.acquire() as conn:
            await counter.observe(conn, count)
            held += 1
            if held == n:
                gate.set()
            await gate.wait()

    await asyncio.gather(*(one() for _ in range(n)))


async def preping_group(cfg: Config, variants: Sequence[tuple[str, str, dict[str, Any]]],
                        rep: int) -> dict[str, Any]:
    hot_n = 20 if cfg.quick else 100
    rounds = 1 if cfg.quick else 3
    slices, slice_dur = (2, 0.1) if cfg.quick else (4, 0.25)
    small: dict[str, Adapter] = {}
    big: dict[str, Adapter] = {}
    counters = {label: PingCounter() for label, _, _ in variants}
    out: dict[str, dict[str, float]] = {label: {} for label, _, _ in variants}
    try:
        for label, impl, opts in variants:
            small[label] = make(cfg, impl, PREPING_SIZE, pool_opts=opts)
            big[label] = make(cfg, impl, cfg.pool_size, pool_opts=opts)
            for a in (small[label], big[label]):
                await a.open()
            await big[label].warm(cfg.pool_size)
            # Open both connections and take each one's baseline reading.
            await _all_at_once(small[label], PREPING_SIZE, counters[label], False)

        # (a) hot: one task reacquires at once, pool of 2.
        for label, _, _ in variants:
            a, counter = small[label], counters[label]
            for _ in range(hot_n):
                async with a.acquire() as conn:
                    await counter.observe(conn)
            out[label]["hot"] = counter.take()

        # (b) idle: every connection idle for PREPING_IDLE s, then all taken at once
        # (all variants in the same rounds, so the sleeps are shared).
        for _ in range(rounds):
            await asyncio.sleep(PREPING_IDLE)
            await asyncio.gather(*(_all_at_once(small[label], PREPING_SIZE, counters[label], True)
                                   for label, _, _ in variants))
        for label, _, _ in variants:
            out[label]["idle"] = counters[label].take()

        # Latency on hot connections: 1 task, pool of 10, no query, in rotating slices.
        labels = [label for label, _, _ in variants]
        for label in labels:
            await run_workers(big[label], 1, None, slice_dur / 5)  # warm the code paths
        ops = dict.fromkeys(labels, 0)
        secs = dict.fromkeys(labels, 0.0)
        cpu = dict.fromkeys(labels, 0.0)
        for k in range(slices):
            for label in rotated(labels, rep + k):
                c0 = cpu_time()
                n, t = await run_workers(big[label], 1, None, slice_dur)
                cpu[label] += cpu_time() - c0
                ops[label] += n
                secs[label] += t
        for label in labels:
            out[label]["us"] = secs[label] / ops[label] * 1e6
            out[label]["cpu_us"] = cpu[label] / ops[label] * 1e6
    finally:
        for a in (*small.values(), *big.values()):
            await a.close()
    return {"per_variant": out}


def preping_jobs(cfg: Config) -> list[Job]:
    variants = []
    for label, impl, opts, _ in PREPING_VARIANTS:
        if impl not in cfg.impls:
            continue
        if impl.startswith("sqlalchemy"):
            try:
                import sqlalchemy  # noqa: F401
            except ImportError:
                continue
        variants.append((label, impl, opts))
    jobs = []
    for rep in range(cfg.reps):

        async def run(rep: int = rep) -> dict[str, Any]:
            return await preping_group(cfg, variants, rep)

        jobs.append(Job("preping", rep, "all", {}, run))
    return jobs if variants else []


def preping_summary(cfg: Config, jobs: list[Job]) -> dict[str, Any]:
    results = [j.result["per_variant"] for j in jobs]
    data: dict[str, dict[str, float]] = {}
    rows = []
    for label, _, _, base in PREPING_VARIANTS:
        mine = [r[label] for r in results if label in r]
        if not mine:
            continue
        d = {k: median([m[k] for m in mine]) for k in ("hot", "idle", "us", "cpu_us")}
        extra = [r[label]["us"] - r[base]["us"] for r in results if base and base in r]
        cpu_extra = [r[label]["cpu_us"] - r[base]["cpu_us"] for r in results if base and base in r]
        d["extra_us"] = median(extra)
        d["extra_cpu_us"] = median(cpu_extra)
        data[label] = d
        rows.append([label, fmt(d["hot"], 2), fmt(d["idle"], 2), fmt(d["us"], 2),
                     fmt(d["extra_us"], 2) if extra else "",
                     fmt(d["cpu_us"], 2), fmt(d["extra_cpu_us"], 2) if cpu_extra else ""])
    headers = ["variant", "pings/acquire, hot", f"pings/acquire, idle {PREPING_IDLE:g} s",
               "µs per acquire+release, hot", "+ µs vs pre-ping off",
               "CPU µs per pair", "+ CPU µs vs off"]
    return {"data": data, "table": md_table(headers, rows)}


# ------------------------------------------------------------------ helpers


def fmt(x: float | None, digits: int) -> str:
    if x is None or x != x:
        return "—"
    return f"{x:,.{digits}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    jobs: Callable[[Config], list[Job]]
    summary: Callable[[Config, list[Job]], dict[str, Any]]
    loop: str = "asyncio"


SCENARIOS = (
    Scenario("overhead", "1. Overhead: acquire + release, no query (µs per pair)",
             overhead_jobs, overhead_summary),
    Scenario("throughput", "2. Throughput: SELECT 1 + fetch, pool of 10",
             throughput_jobs, throughput_summary),
    Scenario("fairness", "3. Fairness under overload: 1000 tasks on 10 connections",
             fairness_jobs, fairness_summary),
    Scenario("cold", "4. Cold start: 100 concurrent first acquires, empty pool of max 20",
             cold_jobs, cold_summary),
    Scenario("statements", "5. Statements per operation (server global counters)",
             statements_jobs, statements_summary),
    Scenario("uvloop", "6. Throughput under uvloop: 100 tasks, pool of 10",
             uvloop_jobs, throughput_summary, loop="uvloop"),
    Scenario("memory", "7. Memory per idle connection (tracemalloc, (100 - 10 idle) / 90)",
             memory_jobs, memory_summary),
    Scenario("preping", "8. pre_ping cost: pings per acquire, hot and idle; latency when hot",
             preping_jobs, preping_summary),
)
