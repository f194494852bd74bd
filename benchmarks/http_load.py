"""HTTP benchmark: the FastAPI recipe under uvicorn, loaded by ``wrk``.

mysqlpool, aiomysql's pool and SQLAlchemy's engine side by side in one run
(benchmarks/http_app.py: one uvicorn worker with uvloop, a pool of 10):

1. **load**: ``wrk`` on ``/select1`` at 64 and 512 connections: req/s, p50
   and p99 latency (wrk's), and the app's CPU per request (utime + stime of
   the uvicorn process, from /proc, over the measured window, divided by the
   requests wrk completed). Each layer with ``CancelOnDisconnect``;
   mysqlpool also without it, to show what the middleware costs.
2. **burst**: 200 requests run ``SELECT SLEEP(2)`` (``--statement sleep``,
   the default) or a statement that keeps a server CPU busy for about as
   long alone (``--statement work``: ``BENCHMARK(10000000, SHA1(tag))``);
   each client hangs up after 0.2 s. From 0.1 s after the last hang-up, 100 ordinary requests
   (``/select1``, one every 10 ms) arrive, while the abandoned SLEEPs would
   still run. Reported: the ordinary requests' p50/p99/max latency and
   status codes, and when the last abandoned statement ended (seconds after
   the last hang-up, from the server's process list, polled every 20 ms),
   and the most ``KILL`` statements the server was still running at one
   poll. A statement counts as running while its tag shows in the process
   list, or while the server shows its connection as ``Busy`` (its details
   locked, by a ``KILL`` under way, so the tag can't be read).
   With and without the middleware, for each layer.

``python benchmarks/http_load.py [--only load,burst] [--layers mysqlpool,...]
[--seconds 8] [--reps 1] [--out benchmarks/results/http.md]``. Needs ``wrk``
(Debian package ``wrk``) and the ``bench`` and ``test`` extras (uvicorn,
uvloop, SQLAlchemy). The server comes from ``MYSQL_DSN`` (default
``mysql://root@127.0.0.1:3306/test``). About 6 minutes with the defaults:
the burst without the middleware is long by nature (200 x 2 s on 10
connections).

The machine is shared (2 cores, the server, other work): absolute req/s
swing between runs; compare layers within one run, where they alternate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiomysql

import mysqlpool

HERE = Path(__file__).resolve().parent
APP = HERE / "http_app.py"
DSN = os.environ.get("MYSQL_DSN", "mysql://root@127.0.0.1:3306/test")
LAYERS = ("mysqlpool", "aiomysql", "sqlalchemy")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    layer: str
    middleware: bool
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int


@dataclass
class Burst:
    layer: str
    middleware: bool
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    last_statement_s: float  # after the last hang-up
    statement: str = "sleep"
    kills_waiting: int = 0  # most KILL statements still running at one poll


@contextlib.contextmanager
def app_server(layer: str, middleware: bool) -> Iterator[tuple[int, int]]:
    """(port, pid) of a uvicorn serving ``layer``'s app."""
    args = [sys.executable, str(APP), layer] + ([] if middleware else ["--no-middleware"])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env={**os.environ, "MYSQL_DSN": DSN})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("port "):
            raise RuntimeError(f"{layer}: the app did not start")
        port = int(line.split()[1])
        _get(port, "/select1")  # the lifespan opened the pool
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _get(port: int, path: str) -> None:
    """One request on a plain socket (no proxy settings apply); raises unless 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        status = sock.makefile("rb").readline().split()[1]
    if status != b"200":
        raise RuntimeError(f"{path} on port {port} answered {status.decode()}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    """wrk's latency (``850.12us``, ``1.20s``, ``1.05m``) in ms; NaN if unreadable."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def wrk(port: int, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run on ``/select1``; its figures (a run with no reply raises)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "--timeout", "30s",
         f"http://127.0.0.1:{port}/select1"],
        capture_output=True, text=True, check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?timeout (\d+)"):
        found = re.search(pattern, out)
        if found:
            errors += int(found.group(1))
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "errors": errors,
    }


def load(layer: str, middleware: bool, connections: int, seconds: float) -> Load:
    with app_server(layer, middleware) as (port, pid):
        subprocess.run(  # warm-up: connections opened, code paths hot
            ["wrk", "-t2", f"-c{connections}", "-d2s", f"http://127.0.0.1:{port}/select1"],
            capture_output=True, check=False,
        )
        before = cpu_seconds(pid)
        result = wrk(port, connections, seconds)
        cpu = cpu_seconds(pid) - before
    return Load(
        layer, middleware, connections, result["rps"], result["p50_ms"], result["p99_ms"],
        cpu / result["requests"] * 1e6, int(result["errors"]),
    )


async def _request(port: int, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        status = (await asyncio.wait_for(reader.readline(), 90)).split()[1].decode()
        writer.close()
        await writer.wait_closed()
    except (OSError, asyncio.TimeoutError, IndexError) as exc:
        status = type(exc).__name__
    return time.perf_counter() - started, status


async def _abandon(port: int, path: str, after: float) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(after)
    writer.close()
    await writer.wait_closed()


@contextlib.asynccontextmanager
async def side_connection() -> AsyncIterator[Any]:
    conn = await aiomysql.connect(**mysqlpool.parse_dsn(DSN).connect_kwargs())
    try:
        yield conn
    finally:
        conn.close()


#: The abandoned statement of ``burst --statement``: its route, given the tag.
STATEMENTS = {
    "sleep": "/sleep?seconds=2&tag={tag}",
    "work": "/work?rounds=10000000&tag={tag}",
}


async def _running(conn: Any, tag: str) -> tuple[int, int]:
    """(abandoned statements still running, KILL statements still running).

    The server shows a connection as ``Busy``, with no statement text, while
    another thread holds its details (a KILL under way): those count as
    running too."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT SUM((INFO LIKE %s AND INFO NOT LIKE '%%PROCESSLIST%%') OR COMMAND = 'Busy'),"
            " SUM(INFO LIKE 'KILL %%')"
            " FROM information_schema.PROCESSLIST WHERE ID != CONNECTION_ID()",
            (f"%{tag}%",),
        )
        running, kills = await cur.fetchone()
    return int(running or 0), int(kills or 0)


async def burst(layer: str, middleware: bool, statement: str = "sleep") -> Burst:
    tag = "burst" + uuid.uuid4().hex[:8]
    path = STATEMENTS[statement].format(tag=tag)
    with app_server(layer, middleware) as (port, _):
        async with side_connection() as side:
            abandoned = [
                asyncio.create_task(_abandon(port, path, 0.2))
                for _ in range(200)
            ]
            await asyncio.gather(*abandoned)
            hung_up = time.perf_counter()

            async def ordinary(index: int) -> tuple[float, str]:
                await asyncio.sleep(0.1 + index * 0.01)
                return await _request(port, "/select1")

            others = asyncio.ensure_future(asyncio.gather(*(ordinary(i) for i in range(100))))
            last_statement = None
            kills_waiting = 0
            while time.perf_counter() - hung_up < 120:
                running, kills = await _running(side, tag)
                kills_waiting = max(kills_waiting, kills)
                if not running:
                    last_statement = time.perf_counter() - hung_up
                    break
                await asyncio.sleep(0.02)
            results = await others
    waits = sorted(wait * 1e3 for wait, _ in results)
    statuses: dict[str, int] = {}
    for _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    return Burst(
        layer, middleware,
        statistics.median(waits), waits[int(len(waits) * 0.99) - 1], waits[-1], statuses,
        float("nan") if last_statement is None else last_statement,
        statement, kills_waiting,
    )


def facts() -> str:
    from importlib.metadata import version

    versions = []
    dists = ("mysqlpool", "aiomysql", "SQLAlchemy", "fastapi", "starlette", "uvicorn", "uvloop")
    for dist in dists:
        try:
            versions.append(f"{dist} {version(dist)}")
        except Exception:
            versions.append(f"{dist} ?")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, cwd=HERE, check=False,
    ).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (
        f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{(wrk_version.stdout or wrk_version.stderr).splitlines()[0]}; " + ", ".join(versions)
    )


def report(loads: list[Load], bursts: list[Burst], command: str, seconds: float) -> str:
    lines = [f"`{command}`", "", facts(), ""]
    if loads:
        lines += [
            f"### Steady load: wrk on `/select1`, {seconds:g} s per run, medians of the runs",
            "",
            "| layer | middleware | wrk connections | req/s | vs aiomysql | p50 | p99 "
            "| app CPU per request | errors |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        keys = sorted({(r.connections, r.layer, r.middleware) for r in loads},
                      key=lambda k: (k[0], LAYERS.index(k[1]), not k[2]))
        for key in keys:
            connections, layer, middleware = key
            runs = [r for r in loads if (r.connections, r.layer, r.middleware) == key]
            base = [
                r for r in loads if (r.connections, r.layer, r.middleware)
                == (connections, "aiomysql", True)
            ]
            # Each run against aiomysql's in the same repetition, then the median.
            ratios = [r.rps / b.rps for r, b in zip(runs, base, strict=False)]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
            lines.append(
                f"| {layer} | {'yes' if middleware else 'no'} | {connections} "
                f"| {statistics.median(r.rps for r in runs):,.0f} | {ratio} "
                f"| {statistics.median(r.p50_ms for r in runs):.1f} ms "
                f"| {statistics.median(r.p99_ms for r in runs):.1f} ms "
                f"| {statistics.median(r.cpu_us_per_request for r in runs):.0f} µs "
                f"| {sum(r.errors for r in runs)} |"
            )
        lines.append("")
    if bursts:
        lines += [
            "### Disconnect burst: 200 statements abandoned after 0.2 s, 100 other requests",
            "",
            "`sleep`: `SELECT SLEEP(2)`; `work`: `SELECT BENCHMARK(10000000, SHA1(tag))`, "
            "about 2 s of one server CPU alone.",
            "",
            "| statement | layer | middleware | others' p50 | p99 | max | statuses "
            "| last abandoned statement ended | KILLs still running (most) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for b in bursts:
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(b.statuses.items()))
            lines.append(
                f"| {b.statement} | {b.layer} | {'yes' if b.middleware else 'no'} "
                f"| {b.p50_ms:,.0f} ms | {b.p99_ms:,.0f} ms | {b.max_ms:,.0f} ms | {statuses} "
                f"| {b.last_statement_s:.2f} s after the last hang-up | {b.kills_waiting} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="load,burst")
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--connections", default="64,512")
    parser.add_argument("--burst-reps", type=int, default=1,
                        help="run each burst this many times (one row each)")
    parser.add_argument("--middleware", choices=("both", "on", "off"), default="both",
                        help="the burst with CancelOnDisconnect, without, or both")
    parser.add_argument("--statement", choices=(*STATEMENTS, "both"), default="sleep",
                        help="what the abandoned requests of the burst run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "http.md")
    args = parser.parse_args()
    only = set(args.only.split(","))
    layers = args.layers.split(",")
    loads: list[Load] = []
    bursts: list[Burst] = []
    if "load" in only:
        variants = [(layer, True) for layer in layers]
        if "mysqlpool" in layers:
            variants.append(("mysqlpool", False))
        for rep in range(args.reps):
            for connections in map(int, args.connections.split(",")):
                # Rotate the order each repetition: a burst of outside load hits all alike.
                turn = rep % len(variants)
                for layer, middleware in variants[turn:] + variants[:turn]:
                    result = load(layer, middleware, connections, args.seconds)
                    print(json.dumps(asdict(result)), file=sys.stderr, flush=True)
                    loads.append(result)
    if "burst" in only:
        statements = list(STATEMENTS) if args.statement == "both" else [args.statement]
        for middleware in {"both": (True, False), "on": (True,), "off": (False,)}[args.middleware]:
            for _ in range(args.burst_reps):
                for layer, statement in itertools.product(layers, statements):
                    outcome = asyncio.run(burst(layer, middleware, statement))
                    print(json.dumps(asdict(outcome)), file=sys.stderr, flush=True)
                    bursts.append(outcome)
    command = "python benchmarks/http_load.py " + " ".join(sys.argv[1:])
    text = report(loads, bursts, command.strip(), args.seconds)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
