"""The pool when its server dies: guarantee 3 of issue 5, and the server-side
parts of guarantee 2, on a private server the tests SIGKILL, stop and restart.

- Killed and restarted under 200 tasks: in-flight operations fail with the
  driver's error (or PoolTimeout), nothing hangs, no slot is lost, and the
  pool serves again after the restart with no call from the user.
- Restarted (SIGKILL or graceful shutdown) while every connection is idle:
  the next acquire, without pre_ping, gets a working connection.
- While the server is down, acquires fail fast (connect refused, 2003, or
  PoolTimeout when the pool is full) and the reaper's refill backs off.
- Authentication and unknown-database errors reach the caller at once and are
  not retried.

The shared server on 3306 is never touched: every pool here points at
``private_server``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterator
from typing import Any

import aiomysql
import pytest

import drivers
from conftest import Figure, PoolFactory, scalar
from mysqlpool import PoolTimeout
from polling import until
from privateserver import PrivateServer

ERR = drivers.errors()  # the run's driver's error classes

LOAD_TASKS = 200
ACQUIRE_TIMEOUT = 2.0  # seconds, each operation of the load
MARGIN = 0.5  # seconds an acquire may overrun its timeout
DRIVER_ERRORS = (ERR.OperationalError, ERR.InterfaceError)
CONNECT_REFUSED = 2003  # CR_CONN_HOST_ERROR: nothing listens on the port


@pytest.fixture(autouse=True)
def server_up(private_server: PrivateServer) -> Iterator[PrivateServer]:
    """Each test starts, and leaves, the private server running."""
    if not private_server.running:
        private_server.start()
    yield private_server
    if not private_server.running:
        private_server.start()


def error_kind(exc: BaseException) -> str:
    """``OperationalError(2013)``, ``PoolTimeout``...: how the figures name an error."""
    name = type(exc).__name__
    if isinstance(exc, ERR.Error) and exc.args and isinstance(exc.args[0], int):
        return f"{name}({exc.args[0]})"
    return name


async def select(conn: Any, value: int) -> Any:
    """``SELECT <value>`` on ``conn``: the answer it got."""
    return await scalar(conn, f"SELECT {int(value)}")


# -- killed and restarted under load -----------------------------------------------


@pytest.mark.slow
async def test_kill_and_restart_under_load_of_200_tasks(
    make_pool: PoolFactory, private_server: PrivateServer, figure: Figure
) -> None:
    pool = await make_pool(private_server.dsn, pool_size=10, max_overflow=10, timeout=5)
    loop = asyncio.get_running_loop()
    phase = "before"  # "before" the kill, server "down", "after" the restart returned
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    longest = 0.0  # the slowest single operation, seconds
    first_ok_after: float | None = None
    wrong_answers: list[tuple[int, Any]] = []

    async def worker(task_id: int) -> None:
        """acquire -> SELECT <task id> -> release, until 3 in a row succeed after the restart."""
        nonlocal longest, first_ok_after
        streak = 0
        while True:
            started_in = phase
            began = loop.time()
            try:
                async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                    answer = await select(conn, task_id)
            except (*DRIVER_ERRORS, PoolTimeout) as exc:
                outcome = error_kind(exc)
            else:
                outcome = "ok"
                if answer != task_id:
                    wrong_answers.append((task_id, answer))
            longest = max(longest, loop.time() - began)
            outcomes[started_in, outcome] += 1
            if outcome != "ok":
                streak = 0
                await asyncio.sleep(0.005)  # a client's pause before it retries
                continue
            if started_in == "after":
                if first_ok_after is None:
                    first_ok_after = loop.time()
                streak += 1
                if streak == 3:
                    return
            await asyncio.sleep(0)

    def count(started_in: str, ok: bool) -> int:
        return sum(
            n
            for (ph, outcome), n in outcomes.items()
            if ph == started_in and (outcome == "ok") == ok
        )

    workers = [asyncio.create_task(worker(i)) for i in range(1, LOAD_TASKS + 1)]
    run = asyncio.gather(*workers)
    try:
        await until(lambda: count("before", ok=True) >= 2 * LOAD_TASKS, "load running", 10)
        assert pool.stats().in_use > 0  # operations are in flight when the server dies

        private_server.kill()
        killed_at = loop.time()
        phase = "down"
        await until(lambda: count("before", ok=False) + count("down", ok=False) >= LOAD_TASKS)
        pool.check_invariants()

        await asyncio.to_thread(private_server.restart)
        up_at = loop.time()
        phase = "after"
        await asyncio.wait_for(asyncio.shield(run), timeout=15)  # nothing hangs
        done_at = loop.time()
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)

    pool.check_invariants()
    stats = pool.stats()
    errors = {outcome: n for (_, outcome), n in outcomes.items() if outcome != "ok"}
    figure(
        "ops ok before / while down / after restart",
        f"{count('before', True)} / {count('down', True)} / {count('after', True)}",
    )
    figure("errors surfaced", dict(sorted(errors.items())))
    figure("server down (s)", f"{up_at - killed_at:.2f}")
    figure("first success after restart (s)",
           f"{first_ok_after - up_at:.3f}" if first_ok_after else "none")
    figure("all 200 tasks done after restart (s)", f"{done_at - up_at:.2f}")
    figure("longest single operation (s)", f"{longest:.2f}")
    figure("slots lost", stats.in_use + stats.waiting + stats.opening)
    assert wrong_answers == []
    assert errors, "the kill surfaced no error to any caller"
    # Every failure was the driver's or a PoolTimeout (anything else escaped
    # from a worker and failed the gather above).
    assert longest <= ACQUIRE_TIMEOUT + MARGIN
    assert count("after", ok=True) >= 3 * LOAD_TASKS
    assert count("after", ok=False) == 0  # no dead connection handed out after the restart
    assert (stats.in_use, stats.waiting, stats.opening) == (0, 0, 0)  # no slot lost
    assert 0 < stats.open <= 20
    assert stats.discarded > 0


# -- restarted while every connection is idle -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_restart_while_idle_next_acquire_gets_a_working_connection(
    make_pool: PoolFactory, private_server: PrivateServer, how: str
) -> None:
    pool = await make_pool(private_server.dsn, pool_size=4, max_overflow=0, pre_ping=False)
    old = [await pool.acquire() for _ in range(4)]
    for conn in old:
        await pool.release(conn)
    assert len(pool) == 4

    # SIGKILL: the kernel closes the sockets; SIGTERM: the server hangs up on
    # each idle client during its shutdown. Either way the client sees EOF.
    await asyncio.to_thread(private_server.kill if how == "kill" else private_server.stop)
    await asyncio.to_thread(private_server.start)
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with pool.acquire(timeout=2) as conn:
        assert all(conn is not dead for dead in old)
        assert await select(conn, 42) == 42
    elapsed = loop.time() - began

    pool.check_invariants()
    stats = pool.stats()
    assert stats.discarded == 4  # every dead one detected without a round trip
    assert (stats.opened, stats.open, stats.in_use) == (5, 1, 0)
    assert elapsed < 1.0


# -- while the server is down ----------------------------------------------------------


@pytest.mark.slow
async def test_acquire_while_server_is_down_fails_fast_and_frees_the_slot(
    make_pool: PoolFactory, private_server: PrivateServer
) -> None:
    pool = await make_pool(private_server.dsn, pool_size=1, max_overflow=0)
    loop = asyncio.get_running_loop()
    held = await pool.acquire()
    private_server.kill()
    try:
        # The pool is full: a waiter gets PoolTimeout at its deadline, not later.
        began = loop.time()
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.3)
        assert 0.3 <= loop.time() - began <= 0.3 + MARGIN

        # Five waiters queue behind the held (now dead) connection. Its release
        # frees the slot; each waiter's connect is refused at once, and each
        # failure hands the slot on to the next waiter: none waits out its timeout.
        async def acquire() -> Any:
            return await pool.acquire(timeout=ACQUIRE_TIMEOUT)

        waiters = [asyncio.create_task(acquire()) for _ in range(5)]
        await until(lambda: pool.stats().waiting == 5, "5 waiting")
        began = loop.time()
        await pool.release(held)
        results = await asyncio.gather(*waiters, return_exceptions=True)
        elapsed = loop.time() - began
        assert [error_kind(r) for r in results] == [f"OperationalError({CONNECT_REFUSED})"] * 5
        assert elapsed < 0.5
        pool.check_invariants()
        stats = pool.stats()
        assert (stats.open, stats.opening, stats.waiting) == (0, 0, 0)
    finally:
        await asyncio.to_thread(private_server.start)

    async with pool.acquire(timeout=2) as conn:  # the slot came back
        assert await select(conn, 7) == 7


@pytest.mark.slow
async def test_refill_backs_off_while_server_is_down_and_recovers_by_itself(
    make_pool: PoolFactory,
    private_server: PrivateServer,
    caplog: pytest.LogCaptureFixture,
    figure: Figure,
) -> None:
    caplog.set_level(logging.WARNING, logger="mysqlpool")
    pool = await make_pool(
        private_server.dsn, pool_size=2, max_overflow=0, min_size=2, reaper_interval=0.05
    )
    assert len(pool) == 2

    def attempts() -> int:
        """Failed refill connects so far: the reaper logs one warning per failure."""
        return sum("could not open a connection" in r.getMessage() for r in caplog.records)

    await asyncio.to_thread(private_server.kill)
    down_at = time.monotonic()
    await until(lambda: attempts() > 0, "first refill failed", timeout=2)
    # One second of downtime. A reaper retrying every pass would try ~40 times
    # (2 connections x 20 passes); with exponential backoff only a handful.
    await asyncio.sleep(1.0)
    failed = attempts()
    await asyncio.to_thread(private_server.start)
    up_at = time.monotonic()
    # Back by itself: no acquire, the reaper refills once its backoff expires.
    await until(lambda: len(pool) == 2, "refilled after the restart", timeout=5)
    recovered = time.monotonic() - up_at
    figure("failed refills during downtime", f"{failed} in {up_at - down_at:.2f} s")
    figure("refilled after the restart (s)", f"{recovered:.2f}")
    pool.check_invariants()
    assert pool.stats().opening == 0
    assert recovered < 3.5  # a couple of backoff steps, not a fixed long wait
    assert failed <= 10, f"{failed} refill attempts in ~1 s: no backoff (hot loop)"


# -- errors that are not transient -------------------------------------------------------

LIMITED_USER = "faults_limited"


@pytest.mark.parametrize(
    ("dsn_template", "code"),
    [
        ("mysql://root:s3cret-pw@127.0.0.1:{port}/test", 1045),  # wrong password
        (f"mysql://{LIMITED_USER}:s3cret-pw@127.0.0.1:{{port}}/test", 1044),  # no grant on db
        ("mysql://root@127.0.0.1:{port}/faults_no_such_db", 1049),  # unknown database
    ],
    ids=["wrong-password-1045", "no-access-to-db-1044", "unknown-db-1049"],
)
async def test_login_errors_reach_the_caller_at_once_and_are_not_retried(
    make_pool: PoolFactory, private_server: PrivateServer, dsn_template: str, code: int
) -> None:
    admin = await aiomysql.connect(
        host="127.0.0.1", port=private_server.port, user="root", db="test"
    )
    try:
        # A user with a password and no privileges at all (so no access to `test`).
        await scalar(
            admin,
            f"CREATE OR REPLACE USER '{LIMITED_USER}'@'127.0.0.1' IDENTIFIED BY 's3cret-pw'",
        )
        aborted_before = await aborted_connects(admin)
        pool = await make_pool(
            drivers.on_driver(dsn_template.format(port=private_server.port)), timeout=5
        )
        loop = asyncio.get_running_loop()
        for _ in range(2):
            began = loop.time()
            with pytest.raises(ERR.OperationalError) as refused:
                await pool.acquire()
            assert loop.time() - began < 1.0
            assert refused.value.args[0] == code
            assert "s3cret-pw" not in str(refused.value)
            pool.check_invariants()
            stats = pool.stats()
            assert (stats.open, stats.opening, stats.in_use, stats.opened) == (0, 0, 0, 0)
        # The server saw exactly one failed login per acquire: no retry.
        assert await aborted_connects(admin) - aborted_before == 2
    finally:
        admin.close()


async def aborted_connects(conn: Any) -> int:
    """The server's count of failed logins (read only; nothing global is changed)."""
    async with conn.cursor() as cur:
        await cur.execute("SHOW GLOBAL STATUS LIKE 'Aborted_connects'")
        row = await cur.fetchone()
    return int(row[1])
