"""The worker recipe (examples/worker.py) stops cleanly on SIGTERM and SIGINT.

It runs as a real subprocess; the test reads its stdout line by line to know
when it works, signals it, and checks that it finished its job in flight,
closed its pool, exited 0 and left no session on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from conftest import Admin
from polling import until

WORKER = Path(__file__).resolve().parent.parent / "examples" / "worker.py"
BOUND = 10.0  # seconds the worker gets to start, and to stop after the signal


@pytest_asyncio.fixture
async def jobs_table(admin: Admin) -> AsyncIterator[str]:
    """A fresh table the worker inserts one row per job into."""
    name = f"mp_worker_jobs_{uuid.uuid4().hex[:12]}"
    await admin.scalar(f"CREATE TABLE `{name}` (job INT NOT NULL)")
    yield name
    await admin.scalar(f"DROP TABLE IF EXISTS `{name}`")


@contextlib.asynccontextmanager
async def worker_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``examples/worker.py *args``, killed and reaped if the test leaves it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error::ResourceWarning",
        str(WORKER),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()  # reaps it and closes the pipes


async def read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), BOUND)
    if not line:
        assert proc.stderr is not None
        pytest.fail(f"worker ended early: {(await proc.stderr.read()).decode()}")
    return line.decode().rstrip("\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_worker_finishes_its_job_closes_the_pool_and_exits_0(
    sig: signal.Signals, mysql_dsn: str, admin: Admin, jobs_table: str
) -> None:
    async with worker_process(mysql_dsn, "--table", jobs_table) as proc:
        assert await read_line(proc) == "worker started"
        # Printed after its first job, with the session the test must see go away.
        match = re.fullmatch(r"worker connection (\d+)", await read_line(proc))
        assert match, "expected the worker's connection id"
        thread_id = int(match.group(1))
        assert await admin.is_alive(thread_id)

        proc.send_signal(sig)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), BOUND)
        except asyncio.TimeoutError:
            pytest.fail(f"worker still running {BOUND} s after {sig.name}")

    assert proc.returncode == 0, err.decode()
    assert err.decode() == ""  # no traceback, no warning, no retry
    final = re.fullmatch(r"worker stopped: (\d+) jobs, pool closed", out.decode().splitlines()[-1])
    assert final, out.decode()
    jobs = int(final.group(1))
    assert jobs >= 1
    # Every job it counted was committed, and none it didn't: the one in
    # flight when the signal came was finished, not cut short.
    await admin.conn.rollback()  # a fresh snapshot: see what the worker committed
    async with admin.conn.cursor() as cur:
        await cur.execute(f"SELECT job FROM `{jobs_table}` ORDER BY job")
        rows = [job for (job,) in await cur.fetchall()]
    assert rows == list(range(1, jobs + 1))

    async def session_gone() -> bool:
        return not await admin.is_alive(thread_id)

    await until(session_gone, f"worker session {thread_id} closed")


async def test_worker_fails_in_one_line_when_the_server_is_unreachable() -> None:
    # Port 1 on localhost: refused at once, no server there.
    async with worker_process("mysql://nobody:s3cret-pw@127.0.0.1:1/test") as proc:
        out, err = await asyncio.wait_for(proc.communicate(), BOUND)
    message = err.decode()
    assert proc.returncode == 2
    assert message.startswith("worker failed: ")
    assert message.count("\n") == 1
    assert "Traceback" not in message
    assert "s3cret-pw" not in message
    assert out == b""
