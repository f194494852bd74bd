"""The cost of ``async with pool.acquire() as conn: pass`` from one task.

    python benchmarks/hotpath.py [--impls mysqlpool,raw-fifo,aiomysql,empty]
                                 [--n 20000] [--reps 7] [--no-callgrind] [--keep DIR]

Two figures per implementation, each taken in child processes (one per
measurement) on a 1-connection pool, opened and warmed against the real
server (``MYSQL_DSN`` or ``mysql://root@127.0.0.1:3306/test``):

* instructions per acquire+release: ``valgrind --tool=callgrind`` over the
  whole child, run once with ``n`` iterations and once with none; the
  difference divided by ``n``. Stable to a few instructions, unlike time.
* µs per acquire+release: wall clock, the best of a few timed loops per
  child, children of all implementations interleaved over ``--reps`` rounds;
  the median and the minimum over the rounds are printed.

``empty`` is an ``async with`` of a trivial class: the floor any pool pays.
An implementation may be given as ``mysqlpool@DIR`` to import mysqlpool from
``DIR`` (a ``src`` folder) instead, e.g. a checkout of an older commit, so a
change can be measured before and after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DSN = "mysql://root@127.0.0.1:3306/test"
DEFAULT_IMPLS = "mysqlpool,raw-fifo,aiomysql,empty"


class _Empty:
    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _loop(acquire: Any, n: int) -> None:
    for _ in range(n):
        async with acquire() as _conn:
            pass


async def _child(impl: str, n: int, mode: str, dsn: str) -> None:
    if impl == "empty":
        adapter = None
        acquire: Any = _Empty
    else:
        sys.path.insert(0, str(HERE))
        from adapters import ADAPTERS

        adapter = ADAPTERS[impl](dsn, 1)
        await adapter.open()
        await adapter.warm(1)
        acquire = adapter.acquire
    try:
        await _loop(acquire, min(n, 200))  # the same warm-up for every n, 0 included
        if mode == "count":
            await _loop(acquire, n)
        else:
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                await _loop(acquire, n)
                best = min(best, time.perf_counter() - t0)
            print(f"{best / n * 1e6:.4f}")
    finally:
        if adapter is not None:
            await adapter.close()


def _child_env(impl: str) -> tuple[str, dict[str, str]]:
    """The adapter name and the environment of a child for ``impl``."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    name, _, src = impl.partition("@")
    src = src or str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return name, env


def _instructions(impl: str, n: int, dsn: str, keep: Path) -> int:
    name, env = _child_env(impl)
    out = keep / f"callgrind.{re.sub(r'[^A-Za-z0-9_.-]', '_', impl)}.{n}.out"
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--child", name, "--n", str(n), "--mode", "count",
        "--dsn", dsn,
    ]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def _microseconds(impl: str, n: int, dsn: str) -> float:
    name, env = _child_env(impl)
    cmd = [sys.executable, __file__, "--child", name, "--n", str(n), "--mode", "wall",
           "--dsn", dsn]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impls", default=DEFAULT_IMPLS)
    parser.add_argument("--n", type=int, default=20000, help="acquire+release pairs per run")
    parser.add_argument("--reps", type=int, default=7, help="interleaved wall-clock rounds")
    parser.add_argument("--dsn", default=os.environ.get("MYSQL_DSN", DEFAULT_DSN))
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--keep", help="keep callgrind outputs here (for callgrind_annotate)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="wall", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child, args.n, args.mode, args.dsn))
        return

    impls = [i for i in args.impls.split(",") if i]
    instructions: dict[str, float] = {}
    if not args.no_callgrind:
        with tempfile.TemporaryDirectory() as tmp:
            keep = Path(args.keep) if args.keep else Path(tmp)
            keep.mkdir(parents=True, exist_ok=True)
            for impl in impls:
                full = _instructions(impl, args.n, args.dsn, keep)
                base = _instructions(impl, 0, args.dsn, keep)
                instructions[impl] = (full - base) / args.n
                print(f"  {impl}: {instructions[impl]:,.0f} instructions", file=sys.stderr)
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    for rep in range(args.reps):
        k = rep % len(impls)
        for impl in impls[k:] + impls[:k]:  # rotated, so no one always runs first
            times[impl].append(_microseconds(impl, args.n, args.dsn))
    print(f"acquire+release, 1 task, 1-connection pool; n={args.n}, {args.reps} rounds")
    print(f"{'implementation':<28} {'instructions':>12} {'µs median':>10} {'µs min':>8}")
    for impl in impls:
        count = instructions.get(impl)
        shown = f"{count:,.0f}" if count is not None else "-"
        us = times[impl]
        median = statistics.median(us) if us else float("nan")
        low = min(us) if us else float("nan")
        print(f"{impl:<28} {shown:>12} {median:>10.2f} {low:>8.2f}")


if __name__ == "__main__":
    main()
