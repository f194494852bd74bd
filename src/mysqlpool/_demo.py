"""``python -m mysqlpool demo``: a burst of simulated web handlers through one pool.

Every handler does what a request handler in a web application does with a
pool: acquire, run one short query, release. Many more handlers than
connections run at once, so most of them queue in ``acquire()``; the report
shows how long they waited and what the pool did meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from ._discovery import (
    CommandError,
    Server,
    describe_error,
    resolve_server,
)
from ._driver_names import driver_errors
from ._pool import Pool
from ._stats import PoolStats
from .errors import PoolError

__all__ = ["DemoResult", "percentile", "run_demo"]

#: What each handler runs: its own id comes back, so a mixed-up reply is
#: caught; the sleep stands for the server-side work of a real request.
HANDLER_SQL = "SELECT %s, SLEEP(0.001)"

# Without a connect_timeout a host that drops packets would keep the demo
# waiting for the OS's TCP timeout (minutes); a DSN's own value wins.
_DEFAULT_CONNECT_TIMEOUT = 10.0
# Handlers still holding a connection after this long at shutdown are cut off.
_CLOSE_TIMEOUT = 5.0
_PROGRESS_INTERVAL = 0.1
_BAR_WIDTH = 30

# What a handler or the set-up may raise because of the server or the pool,
# as opposed to a bug in this module, which should show its traceback.
def _operational_errors() -> tuple[type[BaseException], ...]:
    return (*driver_errors(), PoolError, OSError, asyncio.TimeoutError)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (``pct`` in 0..100); 0.0 if empty."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


@dataclass(frozen=True)
class DemoResult:
    """What a demo run measured."""

    handlers: int
    completed: int
    failed: int
    #: The first failure, already described (no password), or None.
    first_error: str | None
    wall_time: float
    #: Seconds each successful handler spent in ``pool.acquire()``, ascending.
    acquire_waits: list[float]
    server_version: str | None
    #: Taken after the last handler, before the pool closes.
    stats: PoolStats


class _Progress:
    """A ``\\r``-redrawn text bar on a stream (no terminal control codes)."""

    def __init__(self, out: TextIO, total: int) -> None:
        self._out = out
        self._total = total
        self._width = 0  # longest line so far: a shorter one must blank its tail

    def draw(self, done: int, pool: Pool) -> None:
        filled = _BAR_WIDTH * done // self._total
        stats = pool.stats()
        line = (
            f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{self._total} handlers"
            f"  in use {stats.in_use}  waiting {stats.waiting}"
        )
        self._width = max(self._width, len(line))
        self._out.write("\r" + line.ljust(self._width))
        self._out.flush()

    def finish(self) -> None:
        self._out.write("\n")
        self._out.flush()


async def _run(
    server: Server, handlers: int, pool_size: int, progress: _Progress | None
) -> DemoResult:
    params = server.params
    if params.connect_timeout is None:
        params = params.replace(connect_timeout=_DEFAULT_CONNECT_TIMEOUT)
    # min_size=1: open() logs in once before the burst, so an unreachable
    # server or bad credentials fail there with one error instead of once per
    # handler, and the timings below don't include that first handshake.
    pool = Pool(params, pool_size=pool_size, max_overflow=0, min_size=1, name=str(server.params))
    waits: list[float] = []
    failures: list[str] = []
    versions: list[str] = []
    done = 0

    async def handler(handler_id: int) -> None:
        nonlocal done
        try:
            started = time.perf_counter()
            async with pool.acquire() as conn:
                waits.append(time.perf_counter() - started)
                if not versions:
                    versions.append(_version(conn.get_server_info()))
                async with conn.cursor() as cur:
                    await cur.execute(HANDLER_SQL, (handler_id,))
                    row = await cur.fetchone()
            if row is None or row[0] != handler_id:
                failures.append(f"handler {handler_id} got {row!r} back")
        except _operational_errors() as exc:
            failures.append(describe_error(exc, params))
        finally:
            done += 1

    async def show_progress(bar: _Progress) -> None:
        while True:
            bar.draw(done, pool)
            await asyncio.sleep(_PROGRESS_INTERVAL)

    try:
        try:
            await pool.open()
        except _operational_errors() as exc:
            raise CommandError(f"{server}: {describe_error(exc, params)}") from None
        drawer = asyncio.ensure_future(show_progress(progress)) if progress is not None else None
        began = time.perf_counter()
        try:
            await asyncio.gather(*(handler(i) for i in range(handlers)))
        finally:
            wall_time = time.perf_counter() - began
            if drawer is not None:
                drawer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drawer
            if progress is not None:
                # Also when interrupted: whatever is printed next starts on
                # its own line.
                progress.draw(done, pool)
                progress.finish()
        stats = pool.stats()
    finally:
        await pool.close(timeout=_CLOSE_TIMEOUT)

    waits.sort()
    return DemoResult(
        handlers=handlers,
        completed=handlers - len(failures),
        failed=len(failures),
        first_error=failures[0] if failures else None,
        wall_time=wall_time,
        acquire_waits=waits,
        server_version=versions[0] if versions else None,
        stats=stats,
    )


def _version(server_info: str) -> str:
    # MariaDB 10.x announces itself as "5.5.5-10.11.6-MariaDB" so that old
    # clients, which assumed a major version of 5, keep working.
    prefix = "5.5.5-"
    if server_info.startswith(prefix) and "mariadb" in server_info.lower():
        return server_info[len(prefix) :]
    return server_info


def _report(result: DemoResult, server: Server, pool_size: int, out: TextIO) -> None:
    def line(label: str, value: object) -> None:
        out.write(f"  {label + ':':<14} {value}\n")

    ms = [percentile(result.acquire_waits, p) * 1000 for p in (50, 90, 99, 100)]
    throughput = result.completed / result.wall_time if result.wall_time > 0 else 0.0
    out.write("mysqlpool demo\n")
    line("server", server)
    line("driver", server.params.driver)
    line("version", result.server_version or "unknown")
    line("workload", f"{result.handlers} concurrent handlers, each {HANDLER_SQL!r}")
    line("pool", f"pool_size={pool_size}, max_overflow=0")
    out.write("results\n")
    line("completed", f"{result.completed} of {result.handlers} handlers ({result.failed} failed)")
    line("wall time", f"{result.wall_time:.3f} s")
    line("throughput", f"{throughput:.0f} handlers/s")
    line(
        "acquire wait",
        f"p50 {ms[0]:.2f} ms, p90 {ms[1]:.2f} ms, p99 {ms[2]:.2f} ms, max {ms[3]:.2f} ms",
    )
    out.write("pool stats\n")
    for field in dataclasses.fields(result.stats):
        value = getattr(result.stats, field.name)
        if field.name == "wait_time":
            value = f"{value:.3f} s (summed over all acquires)"
        line(field.name, value)


def run_demo(
    dsn: str | None = None,
    *,
    handlers: int = 1000,
    pool_size: int = 10,
    progress: bool | None = None,
    driver: str | None = None,
) -> int:
    """Run the demo and print its report on stdout; return the exit status.

    Args:
        dsn: the server; None resolves one as :func:`resolve_server` does.
        handlers: simulated web handlers, all started at once.
        pool_size: the pool's ``pool_size`` (``max_overflow`` is 0, so this
            is also the most connections ever open).
        progress: draw a progress bar on stderr; None draws it only when
            stderr is a terminal.
        driver: ``"aiomysql"`` or ``"asyncmy"``; None: the DSN's scheme says.

    Returns:
        0: every handler succeeded.

    Raises:
        CommandError: no server, a malformed DSN, or the server refused the
            first connection (nothing printed on stdout); or some handlers
            failed (after the report, naming the first failure).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    with contextlib.ExitStack() as stack:
        server = resolve_server(dsn, stack, verbose=progress).on_driver(driver)
        bar = _Progress(sys.stderr, handlers) if progress else None
        result = asyncio.run(_run(server, handlers, pool_size, bar))
    _report(result, server, pool_size, sys.stdout)
    if result.failed:
        raise CommandError(
            f"{result.failed} of {result.handlers} handlers failed; first: {result.first_error}"
        )
    return 0
