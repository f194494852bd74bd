"""Run the mysqlpool benchmarks against its peers and write benchmarks/results/.

    python benchmarks/run.py [--quick] [--dsn DSN] [--out DIR] [--reps N] [--only a,b]

A --quick run is a smoke test: it writes build/bench-quick/ unless --out says
otherwise, never the published benchmarks/results/.

The DSN defaults to ``MYSQL_DSN`` or ``mysql://root@127.0.0.1:3306/test``.
Scenarios: overhead, throughput, fairness, cold, statements, uvloop, memory, preping,
and SQLAlchemy on mysqlpool against plain SQLAlchemy: sqlalchemy, sqlalchemy_fairness,
sqlalchemy_statements.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiomysql
from adapters import connect_kwargs
from sa_scenarios import SA_NOTES, SA_SCENARIOS
from scenarios import (
    ALL_IMPLS,
    Config,
    Job,
    Scenario,
    fmt,
    md_table,
)
from scenarios import (
    SCENARIOS as CORE_SCENARIOS,
)

SCENARIOS: tuple[Scenario, ...] = (*CORE_SCENARIOS, *SA_SCENARIOS)

DEFAULT_DSN = "mysql://root@127.0.0.1:3306/test"
HERE = Path(__file__).resolve().parent
PUBLISHED = HERE / "results"  # the figures README and docs quote: full runs only
QUICK_OUT = HERE.parent / "build" / "bench-quick"  # ignored by git


def default_out(quick: bool) -> Path:
    """Where results go without --out: a quick run must not replace the published ones."""
    return QUICK_OUT if quick else PUBLISHED


class Progress:
    """A plain-text progress bar on stderr (``\\r``, no dependencies)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.t0 = total, 0, time.monotonic()

    def show(self, label: str) -> None:
        width = 30
        filled = width * self.done // max(1, self.total)
        elapsed = time.monotonic() - self.t0
        line = (f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.0f}s {label}")
        sys.stderr.write(line[:119].ljust(119))
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        # Typed by uvloop itself; the annotation keeps it typed where it isn't installed.
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def run_jobs(scenario: Scenario, jobs: list[Job], progress: Progress) -> None:
    async def main() -> None:
        for job in jobs:
            progress.show(job.label)
            try:
                job.result = await job.run()
            except Exception as exc:  # one broken peer must not lose the whole run
                job.result = {"error": f"{type(exc).__name__}: {exc}"}
                sys.stderr.write(f"\n{job.label}: {job.result['error']}\n")
            progress.done += 1
            await asyncio.sleep(0.05)  # let closed sockets settle

    loop = loop_factory(scenario.loop)()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def git_state() -> str:
    """The commit measured, with ``+ uncommitted changes in src/`` when src/ is dirty."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in src/" if dirty else "")


def machine_facts(dsn: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    async def server_version() -> str:
        conn = await aiomysql.connect(**connect_kwargs(dsn))
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT VERSION()")
                (version,) = await cur.fetchone()
                return str(version)
        finally:
            conn.close()

    import importlib.metadata as md

    versions = {}
    for dist in ("mysqlpool", "aiomysql", "PyMySQL", "SQLAlchemy", "asyncmy", "uvloop"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "commit": git_state(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "server": asyncio.run(server_version()),
        "packages": versions,
    }


def targets(summaries: dict[str, dict[str, Any]]) -> str:
    """The issue's targets, for mysqlpool (and aiomysql's pool for comparison)."""
    rows = []

    def get(scn: str, *path: str) -> float | None:
        d: Any = summaries.get(scn, {}).get("data")
        for p in path:
            if not isinstance(d, dict) or p not in d:
                return None
            d = d[p]
        return float(d)

    def row(figure: str, target: str, fn: Callable[[str], tuple[str, bool | None]]) -> None:
        mine, ok = fn("mysqlpool")
        theirs, _ = fn("aiomysql")
        fifo, _ = fn("raw-fifo")
        verdict = "—" if ok is None else ("met" if ok else "**missed**")
        rows.append([figure, theirs, fifo, mine, target, verdict])

    def us(config: str, limit: float) -> Callable[[str], tuple[str, bool | None]]:
        def fn(impl: str) -> tuple[str, bool | None]:
            v = get("overhead", impl, config)
            return (fmt(v, 2) + " µs", None if v is None else v <= limit)
        return fn

    row("acquire+release, 1 task (10 idle)", "≤ 2 µs", us("1 task", 2.0))
    row("acquire+release, 1 task (100 idle)", "≤ 2 µs", us("1 task, 100 idle", 2.0))
    row("acquire+release, 100 tasks on 10", "≤ 4 µs", us("100 tasks on 10", 4.0))

    def ratios(impl: str) -> tuple[str, bool | None]:
        vals = [get("throughput", impl, c, "ratio") for c in ("10", "100", "1000")]
        got = [v for v in vals if v is not None]
        text = " / ".join(fmt(v, 2) for v in vals)
        return text, (min(got) >= 0.95 if got else None)

    row("throughput vs raw-dedicated, 10/100/1000 tasks", "≥ 0.95 each", ratios)

    def stmts(impl: str) -> tuple[str, bool | None]:
        v = get("statements", impl, "Questions")
        return fmt(v, 2), None if v is None else v <= 1.005

    row("statements per op (Questions)", "1.00", stmts)

    def overtaken(impl: str) -> tuple[str, bool | None]:
        v = get("fairness", impl, "overtaken")
        return ("—" if v is None else f"{v * 100:.1f}%"), None if v is None else v == 0

    row("overtaken grants, 1000 tasks", "0%", overtaken)

    def jain(impl: str) -> tuple[str, bool | None]:
        j = get("fairness", impl, "jain")
        r = get("fairness", impl, "p99_over_p50")
        if j is None or r is None:
            return "—", None
        return f"{j:.3f}, p99 = {r:.2f} x p50", j >= 0.99 and r <= 1.25

    row("Jain fairness, 1000 tasks", "≥ 0.99, p99 ≤ 1.25 x p50", jain)

    def cold(impl: str) -> tuple[str, bool | None]:
        ms = get("cold", impl, "20 ms connect", "ms")
        r = get("cold", impl, "20 ms connect", "ratio")
        n = get("cold", impl, "20 ms connect", "opened")
        if ms is None or r is None or n is None:
            return "—", None
        return f"{ms:.0f} ms ({r:.2f} x raw), {n:.0f} opened", r <= 1.2 and n == 20

    row("cold start, 20 ms connects, 100 acquires, max 20", "≤ 1.2 x raw, 20 opened", cold)

    def preping(impl: str) -> tuple[str, bool | None]:
        if impl != "mysqlpool":
            return "— (no pre-ping option)" if impl == "aiomysql" else "—", None
        hot = get("preping", "mysqlpool pre_ping=True", "hot")
        idle = get("preping", "mysqlpool pre_ping=True", "idle")
        extra = get("preping", "mysqlpool pre_ping=True", "extra_us")
        if hot is None or idle is None:
            return "—", None
        text = f"{hot:.2f} pings/acquire hot, {idle:.2f} idle > 1 s"
        if extra is not None:
            text += f"; {extra:+.2f} µs hot vs off"
        return text, hot == 0 and idle == 1

    row("pre_ping=True: pings per acquire (scenario 8)",
        "0 hot, 1 when idle > threshold (~1 s)", preping)
    headers = ["figure", "aiomysql pool", "raw-fifo (reference)", "mysqlpool", "target", "verdict"]
    return md_table(headers, rows)


def charts(out: Path, jobs_by: dict[str, list[Job]], summaries: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    thr = summaries.get("throughput", {}).get("data")
    if thr:
        fig, ax = plt.subplots(figsize=(8, 5))
        for impl, per in thr.items():
            xs = sorted(int(c) for c in per)
            ax.plot(xs, [per[str(x)]["qps"] for x in xs], marker="o", label=impl)
        ax.set_xscale("log")
        concs = sorted({int(c) for per in thr.values() for c in per})
        ax.set_xticks(concs, [str(c) for c in concs])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_xlabel("concurrent tasks (pool of 10)")
        ax.set_ylabel("SELECT 1 per second (median)")
        ax.set_title("Throughput vs concurrency")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=110)
        plt.close(fig)
        made.append("throughput.png")
    fair = [j for j in jobs_by.get("fairness", []) if "waits" in j.result]
    if fair:
        fig, ax = plt.subplots(figsize=(8, 5))
        for impl in dict.fromkeys(j.impl for j in fair):
            waits = sorted(w * 1e3 for j in fair if j.impl == impl for w in j.result["waits"])
            waits = [max(w, 1e-3) for w in waits]
            n = len(waits)
            step = max(1, n // 2000)
            xs = [*waits[::step], waits[-1]]
            ys = [*(i / n for i in range(0, n, step)), 1.0]
            ax.plot(xs, ys, label=impl)
        ax.set_xscale("log")
        ax.set_xlabel("acquire wait (ms, log)")
        ax.set_ylabel("share of acquires (CDF)")
        ax.set_title("Acquire waits, 1000 tasks on 10 connections (all repetitions)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "waits.png", dpi=110)
        plt.close(fig)
        made.append("waits.png")
    return made


NOTES = {
    "overhead": "Median µs per `async with acquire()` with nothing inside, over the "
    "repetitions; pools pre-warmed (10 or 100 idle connections). connect-per-request "
    "pays a full connect + COM_QUIT.",
    "throughput": "Median queries/s; in brackets the median of the per-repetition ratios to "
    "raw-dedicated (min(tasks, 10) tasks each owning a connection) at the same concurrency. "
    "Within a repetition all pools stay open and take turns in short slices (4 x 0.25 s "
    "each, rotating order), so outside load hits them alike. "
    "asyncmy runs its own Cython driver, so its ratio to the aiomysql reference can exceed 1. "
    "Wall-clock q/s swings with outside load on a shared machine; the client CPU per query "
    "(second table) is far steadier and isolates each pool's own cost.",
    "fairness": "Each task loops acquire → SELECT 1 → release until the deadline. "
    "*Overtaken*: share of grants (before the deadline) made while a request with a lower "
    "sequence number (asked earlier) was still waiting. Jain's index over per-task grant "
    "counts; *never served*: tasks with no grant before the deadline. Waits include the "
    "requests drained after the deadline.",
    "cold": "Time until all 100 acquires (each running SELECT 1) are served; *opened* is "
    "the server's `Connections` counter delta. The reference row opens 20 aiomysql "
    "connections in parallel, then runs the 100 queries over them (5 each).",
    "statements": "Deltas of the server's global counters around 10 tasks x N ops on a warm "
    "pool, divided by the ops, minus the monitor's own SHOW. Global counters: other load on "
    "the server adds noise, run it alone.",
    "uvloop": "Scenario 2 at 100 tasks on a `uvloop.new_event_loop()` loop. The CPU table "
    "is the client process's CPU per query, as in scenario 2.",
    "preping": "Pings counted with the per-session `Com_admin_commands` counter (COM_PING "
    "counts there; the SHOW that reads it is a COM_QUERY and does not), read on each "
    "connection before it is released, against that connection's previous reading. *hot*: "
    "one task reacquires at once from a pool of 2; *idle*: both connections of a pool of 2 "
    "left idle 1.2 s, then taken at once (mysqlpool's `pre_ping=True` threshold is 1 s; "
    "SQLAlchemy's `pool_pre_ping=True` pings at every checkout). Latency: 1 task, `async "
    "with acquire()` and nothing inside, pool of 10, all variants in rotating slices; "
    "*+ vs off* is the per-repetition difference to the same pool with pre-ping off.",
    "memory": "tracemalloc: traced bytes held by a pool with 100 idle connections minus one "
    "with 10, over 90; *bare* is the same for a plain list of driver connections "
    "(aiomysql, or asyncmy for asyncmy), each having run one query. raw-fifo keeps a "
    "connection in a deque slot, so its row shows the method's floor (~0.8 kB).",
}
NOTES.update(SA_NOTES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    ap.add_argument("--dsn", default=os.environ.get("MYSQL_DSN", DEFAULT_DSN))
    ap.add_argument("--out", default=None,
                    help="results folder (default: benchmarks/results, or "
                    "build/bench-quick with --quick)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5, quick 1)")
    ap.add_argument("--only", default="", help="comma-separated scenarios: "
                    + ",".join(s.key for s in SCENARIOS))
    ap.add_argument("--impls", default="", help="comma-separated implementations: "
                    + ",".join(ALL_IMPLS))
    args = ap.parse_args(argv)

    reps = args.reps if args.reps is not None else (1 if args.quick else 5)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - {s.key for s in SCENARIOS}
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    impls = [i for i in args.impls.split(",") if i] or list(ALL_IMPLS)
    if set(impls) - set(ALL_IMPLS):
        ap.error(f"unknown implementation(s): {', '.join(sorted(set(impls) - set(ALL_IMPLS)))}")
    scenarios = [s for s in SCENARIOS if not only or s.key in only]
    cfg = Config(dsn=args.dsn, quick=args.quick, reps=reps, impls=impls)
    out = Path(args.out) if args.out is not None else default_out(args.quick)
    out.mkdir(parents=True, exist_ok=True)

    facts = machine_facts(cfg.dsn)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    command = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", command)  # never a password
    plans = {s.key: s.jobs(cfg) for s in scenarios}
    progress = Progress(sum(len(j) for j in plans.values()))
    t0 = time.monotonic()
    for s in scenarios:
        run_jobs(s, plans[s.key], progress)
    progress.show("done")
    progress.finish()

    summaries: dict[str, dict[str, Any]] = {}
    errors = []
    for s in scenarios:
        ok = [j for j in plans[s.key] if "error" not in j.result]
        errors += [f"{j.label}: {j.result['error']}" for j in plans[s.key] if "error" in j.result]
        summaries[s.key] = s.summary(cfg, ok) if ok else {"data": {}, "table": "(no results)"}

    made = charts(out, plans, summaries)
    md = [
        "# mysqlpool benchmarks",
        "",
        f"- command: `{command}`" + (" (quick smoke run)" if cfg.quick else ""),
        f"- mysqlpool at {facts['commit']}",
        f"- date: {facts['date']}, wall time {time.monotonic() - t0:.0f} s, "
        f"{reps} interleaved repetition(s), medians",
        f"- Python {facts['python']} on {facts['cpu']}, {facts['cores']} cores; "
        f"server {facts['server']} on loopback",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in facts["packages"].items()),
        "- pool of 10 connections unless said otherwise; `SELECT 1` fetched through a cursor",
        "",
    ]
    if summaries.get("overhead") or summaries.get("throughput") or summaries.get("preping"):
        md += ["## Targets (issue 4)", "", targets(summaries), ""]
    for s in scenarios:
        md += [f"## {s.title}", "", NOTES[s.key], "", summaries[s.key]["table"], ""]
    if made:
        md += ["## Charts", ""] + [f"![{m}]({m})" for m in made] + [""]
    if errors:
        md += ["## Errors", ""] + [f"- {e}" for e in errors] + [""]
    (out / "results.md").write_text("\n".join(md))

    raw = {
        key: [{"rep": j.rep, "impl": j.impl, "params": j.params,
               "result": {k: v for k, v in j.result.items() if k != "waits"}}
              for j in jobs]
        for key, jobs in plans.items()
    }
    doc = {
        "command": command,
        "facts": facts,
        "config": {"reps": reps, "quick": cfg.quick, "impls": impls, "pool_size": cfg.pool_size},
        "summaries": {k: v["data"] for k, v in summaries.items()},
        "jobs": raw,
        "errors": errors,
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=str))
    print((out / "results.md").read_text())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
