"""Checking out and giving back: bounds, timeouts, fairness, cancellation, cold start.

Every scenario runs against the real server. Event order is forced with
Events and by polling the pool's own state (``until``), never with sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

import drivers
from conftest import scalar
from mysqlpool import Pool, PoolClosed, PoolError, PoolTimeout
from mysqlpool.testing import ManualClock
from polling import until

ERR = drivers.errors()  # the run's driver's error classes

PoolFactory = Callable[..., Awaitable[Pool]]

# No server needed: these pools never connect.
OFFLINE_DSN = "mysql://root@127.0.0.1:3306/test"




async def queue_waiter(pool: Pool, coro: Awaitable[Any]) -> asyncio.Task[Any]:
    """Start ``coro`` (an acquire) and return once it is queued in the pool."""
    before = pool.stats().waiting
    task: asyncio.Task[Any] = asyncio.ensure_future(coro)
    await until(lambda: pool.stats().waiting == before + 1 or task.done(), what="waiter queued")
    assert not task.done(), "expected the acquire to wait"
    return task


# ------------------------------------------------------------------ basics


async def test_async_with_yields_the_drivers_connection(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2)
    async with pool.acquire() as conn:
        assert isinstance(conn, drivers.connection_class())
        assert await scalar(conn, "SELECT 1") == 1
        assert pool.stats().in_use == 1
        assert len(pool) == 0
    assert pool.stats().in_use == 0
    assert len(pool) == 1
    pool.check_invariants()


async def test_manual_acquire_and_release(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2)
    conn = await pool.acquire()
    try:
        assert isinstance(conn, drivers.connection_class())
        assert await scalar(conn, "SELECT 1 + 1") == 2
        assert pool.stats().in_use == 1
    finally:
        await pool.release(conn)
    assert pool.stats().in_use == 0
    assert len(pool) == 1
    pool.check_invariants()


async def test_released_connection_is_reused(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2)
    async with pool.acquire() as conn:
        first_thread = conn.thread_id()
    async with pool.acquire() as conn:
        assert conn.thread_id() == first_thread
        assert await scalar(conn, "SELECT CONNECTION_ID()") == first_thread
    assert pool.stats().opened == 1


async def test_len_size_closed_and_repr(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=3, name="acq-repr")
    assert pool.size == 3
    assert len(pool) == 0
    assert not pool.closed
    text = repr(pool)
    assert "'acq-repr'" in text
    assert " open " in text
    assert "size=3" in text
    assert "open=0" in text

    conn = await pool.acquire()
    assert "in_use=1" in repr(pool)
    assert "open=1" in repr(pool)
    await pool.release(conn)
    assert len(pool) == 1
    assert "idle=1" in repr(pool)
    assert "in_use=0" in repr(pool)

    await pool.close()
    assert pool.closed
    assert len(pool) == 0
    assert " closed " in repr(pool)
    assert "open=0" in repr(pool)


def test_repr_never_shows_the_password() -> None:
    pool = Pool("mysql://app:s3cr3t-pw@127.0.0.1:3306/test")
    assert "s3cr3t-pw" not in repr(pool)
    assert "s3cr3t-pw" not in pool.name
    assert " new " in repr(pool)


# ------------------------------------------------------------------ bounds


async def test_at_most_pool_size_plus_overflow_open(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2, max_overflow=1)
    gate = asyncio.Event()
    holders = 0
    max_holders = 0
    max_open = 0
    threads: list[int] = []

    async def worker() -> None:
        nonlocal holders, max_holders, max_open
        async with pool.acquire() as conn:
            holders += 1
            max_holders = max(max_holders, holders)
            max_open = max(max_open, pool.stats().open)
            threads.append(await scalar(conn, "SELECT CONNECTION_ID()"))
            await gate.wait()
            holders -= 1

    tasks = [asyncio.ensure_future(worker()) for _ in range(10)]
    await until(
        lambda: holders == 3 and pool.stats().waiting == 7, what="7 waiting behind 3 holders"
    )
    stats = pool.stats()
    assert stats.in_use == 3
    assert stats.open == 3
    assert holders == 3
    pool.check_invariants()

    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert max_holders == 3
    assert max_open == 3
    assert len(set(threads)) == 3
    stats = pool.stats()
    assert stats.opened == 3
    assert stats.acquires == 10
    # The queue keeps pool_size; the overflow connection closed on return.
    assert stats.open == stats.idle == 2
    assert stats.closed == 1
    pool.check_invariants()


async def test_fourth_acquire_waits_and_gets_the_released_connection(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=2, max_overflow=1)
    held = [await pool.acquire() for _ in range(3)]
    waiter = await queue_waiter(pool, pool.acquire())
    assert pool.stats().waiting == 1
    assert pool.stats().open == 3
    pool.check_invariants()

    await pool.release(held[1])
    conn = await asyncio.wait_for(waiter, 5)
    assert conn is held[1]
    assert pool.stats().waiting == 0
    assert pool.stats().opened == 3
    assert pool.stats().wait_time > 0
    for c in (held[0], held[2], conn):
        await pool.release(c)
    pool.check_invariants()


async def test_a_waiters_wait_ends_when_the_connection_is_handed_over(
    make_pool: PoolFactory,
) -> None:
    # The hand-over is what ends the wait (and starts the checkout): time
    # the waiter then spends queued on the event loop is not the pool's.
    clock = ManualClock()
    pool = await make_pool(pool_size=1, max_overflow=0, clock=clock)
    held = await pool.acquire()
    waiter = await queue_waiter(pool, pool.acquire(timeout=None))
    clock.advance(2)
    await pool.release(held)  # handed over at 2 s
    clock.advance(3)  # before the waiter runs again
    conn = await asyncio.wait_for(waiter, 5)
    assert conn is held
    assert pool.stats().wait_time == 2
    await pool.release(conn)


# ---------------------------------------------------------------- timeouts


async def test_acquire_timeout_raises_pool_timeout(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, name="acq-timeout")
    holder = await pool.acquire()
    loop = asyncio.get_running_loop()

    started = loop.time()
    with pytest.raises(PoolTimeout) as caught:
        await pool.acquire(timeout=0.2)
    elapsed = loop.time() - started

    assert 0.2 - 1e-3 <= elapsed < 1.0
    err = caught.value
    assert isinstance(err, TimeoutError)
    assert isinstance(err, PoolError)
    message = str(err)
    assert "pool_size=1" in message
    assert "max_overflow=0" in message
    assert "acq-timeout" in message
    assert "0.2" in message
    password = pool.params.password
    if isinstance(password, str) and password:
        assert password not in message

    # Nothing leaked: the timed-out waiter is gone and the holder's
    # connection is still the only one.
    stats = pool.stats()
    assert stats.timeouts == 1
    assert stats.waiting == 0
    assert stats.open == stats.in_use == 1
    pool.check_invariants()
    await pool.release(holder)
    async with pool.acquire(timeout=1) as conn:
        assert conn is holder
    assert pool.stats().opened == 1
    pool.check_invariants()


@pytest_asyncio.fixture
async def silent_port() -> AsyncIterator[int]:
    """A local port that accepts TCP connections and never answers (a stalled server)."""
    accepted = 0
    finished = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted, finished
        accepted += 1
        try:
            await reader.read()  # until the client hangs up
        finally:
            writer.close()
            finished += 1

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
        await until(lambda: finished == accepted, what="stalled server's clients gone")
    finally:
        server.close()
        await server.wait_closed()


async def test_timeout_while_opening_names_the_pool_but_not_the_password(
    make_pool: PoolFactory, silent_port: int
) -> None:
    pool = await make_pool(
        f"mysql://app:s3cr3t-pw@127.0.0.1:{silent_port}/test",
        pool_size=1,
        max_overflow=0,
        connect_timeout=30,
    )
    with pytest.raises(PoolTimeout) as caught:
        await pool.acquire(timeout=0.2)
    message = str(caught.value)
    assert "s3cr3t-pw" not in message
    assert f"127.0.0.1:{silent_port}" in message
    assert "after 0.2 s opening a connection" in message
    # The half-open connection was closed and its slot given back.
    stats = pool.stats()
    assert stats.timeouts == 1
    assert stats.open == stats.opening == stats.opened == stats.closed == 0
    pool.check_invariants()


async def test_pool_level_timeout_applies_unless_overridden(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, timeout=0.2)
    holder = await pool.acquire()
    loop = asyncio.get_running_loop()

    started = loop.time()
    with pytest.raises(PoolTimeout, match=r"after 0\.2 s"):
        await pool.acquire()
    assert 0.2 - 1e-3 <= loop.time() - started < 1.0

    started = loop.time()
    with pytest.raises(PoolTimeout):
        await pool.acquire(timeout=0)  # the per-call value wins
    assert loop.time() - started < 0.2

    assert pool.stats().timeouts == 2
    assert pool.stats().waiting == 0
    await pool.release(holder)
    pool.check_invariants()


# ---------------------------------------------------------------- fairness


async def test_waiters_are_served_in_arrival_order(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    holder = await pool.acquire()
    served: list[int] = []

    async def waiter(i: int) -> None:
        conn = await pool.acquire()
        served.append(i)
        assert conn is holder
        await pool.release(conn)

    tasks = [await queue_waiter(pool, waiter(i)) for i in range(5)]
    assert pool.stats().waiting == 5
    pool.check_invariants()

    await pool.release(holder)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert served == [0, 1, 2, 3, 4]
    assert pool.stats().opened == 1
    assert pool.stats().acquires == 6


async def test_releaser_does_not_barge_ahead_of_an_older_waiter(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    conn = await pool.acquire()
    await scalar(conn, "SELECT 1")  # leaves a snapshot: release awaits a ROLLBACK
    order: list[str] = []

    async def waiter() -> None:
        got = await pool.acquire()
        order.append("waiter")
        await pool.release(got)

    older = await queue_waiter(pool, waiter())
    await pool.release(conn)
    again = await pool.acquire(timeout=5)  # re-acquire at once: must queue behind
    order.append("releaser")

    assert order == ["waiter", "releaser"]
    assert again is conn
    await older
    await pool.release(again)
    pool.check_invariants()


async def test_timed_out_waiter_gets_nothing_and_the_next_waiter_is_served(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    holder = await pool.acquire()
    impatient = await queue_waiter(pool, pool.acquire(timeout=0.1))
    patient = await queue_waiter(pool, pool.acquire(timeout=5))

    with pytest.raises(PoolTimeout):
        await impatient
    assert pool.stats().waiting == 1
    pool.check_invariants()

    await pool.release(holder)
    conn = await asyncio.wait_for(patient, 5)
    assert conn is holder
    await pool.release(conn)
    stats = pool.stats()
    assert (stats.acquires, stats.timeouts, stats.opened, stats.open) == (2, 1, 1, 1)
    pool.check_invariants()


async def test_cancelled_waiter_gets_nothing_and_the_next_waiter_is_served(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    holder = await pool.acquire()
    first = await queue_waiter(pool, pool.acquire())
    middle = await queue_waiter(pool, pool.acquire())
    last = await queue_waiter(pool, pool.acquire())

    middle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await middle
    assert pool.stats().waiting == 2
    pool.check_invariants()

    await pool.release(holder)
    got = await asyncio.wait_for(first, 5)
    assert got is holder
    assert not last.done()
    await pool.release(got)
    got = await asyncio.wait_for(last, 5)
    assert got is holder
    await pool.release(got)

    stats = pool.stats()
    assert (stats.acquires, stats.timeouts, stats.opened, stats.open) == (3, 0, 1, 1)
    assert stats.waiting == 0
    pool.check_invariants()


async def test_waiter_cancelled_as_it_is_handed_a_connection_passes_it_on(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    holder = await pool.acquire()
    first = await queue_waiter(pool, pool.acquire())
    second = await queue_waiter(pool, pool.acquire())

    await pool.release(holder)
    # The release resolved first's future; first has not run since.
    stats = pool.stats()
    assert (stats.waiting, stats.in_use, stats.idle) == (1, 1, 0)  # handed to first
    first.cancel()

    with pytest.raises(asyncio.CancelledError):
        await first
    got = await asyncio.wait_for(second, 5)
    assert got is holder
    stats = pool.stats()
    assert (stats.open, stats.opened, stats.acquires) == (1, 1, 2)
    pool.check_invariants()
    await pool.release(got)


async def test_last_waiter_cancelled_as_it_is_handed_a_connection_returns_it_to_idle(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    holder = await pool.acquire()
    only = await queue_waiter(pool, pool.acquire())

    await pool.release(holder)
    stats = pool.stats()
    assert (stats.waiting, stats.in_use, stats.idle) == (0, 1, 0)  # already handed to `only`
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only

    stats = pool.stats()
    assert (stats.open, stats.idle, stats.in_use, stats.opened) == (1, 1, 0, 1)
    pool.check_invariants()
    async with pool.acquire(timeout=1) as conn:
        assert conn is holder


async def test_waiter_cancelled_as_it_is_handed_a_slot_frees_it(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    holder = await pool.acquire()
    first = await queue_waiter(pool, pool.acquire())
    second = await queue_waiter(pool, pool.acquire())

    holder.close()  # a broken connection: its release frees the slot instead
    await pool.release(holder)
    assert pool.stats().opening == 1  # the slot went to `first`
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    got = await asyncio.wait_for(second, 5)
    assert got is not holder
    assert await scalar(got, "SELECT 1") == 1
    await pool.release(got)
    stats = pool.stats()
    assert (stats.open, stats.opened, stats.closed, stats.discarded) == (1, 2, 1, 1)
    pool.check_invariants()

    # With no one left to take it, a declined slot is simply freed.
    holder = await pool.acquire()
    only = await queue_waiter(pool, pool.acquire())
    holder.close()
    await pool.release(holder)
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only
    stats = pool.stats()
    assert (stats.open, stats.opening, stats.waiting) == (0, 0, 0)
    pool.check_invariants()


# ---------------------------------------------------------------- overflow


async def test_overflow_is_closed_on_return_when_the_queue_is_full(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(pool_size=1, max_overflow=2)
    held = [await pool.acquire() for _ in range(3)]
    assert pool.stats().open == 3
    for conn in held:
        await pool.release(conn)

    stats = pool.stats()
    assert (stats.opened, stats.open, stats.idle, stats.closed) == (3, 1, 1, 2)
    assert drivers.is_closed(held[1])
    assert drivers.is_closed(held[2])
    async with pool.acquire() as conn:
        assert conn is held[0]  # the first one back filled the queue
    pool.check_invariants()


async def test_max_overflow_none_is_unbounded(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2, max_overflow=None)
    gate = asyncio.Event()
    holding = 0

    async def worker() -> None:
        nonlocal holding
        async with pool.acquire(timeout=5) as conn:
            assert await scalar(conn, "SELECT 1") == 1
            holding += 1
            await gate.wait()

    tasks = [asyncio.ensure_future(worker()) for _ in range(20)]
    # Nobody releases before the gate opens: 20 holders at once means nobody waited.
    await until(lambda: holding == 20, what="20 simultaneous holders")
    stats = pool.stats()
    assert stats.max_overflow is None
    assert (stats.in_use, stats.open, stats.waiting) == (20, 20, 0)
    pool.check_invariants()

    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    stats = pool.stats()
    assert (stats.idle, stats.closed, stats.timeouts) == (2, 18, 0)


@pytest.mark.parametrize(("lifo", "expected"), [(False, 0), (True, 2)], ids=["fifo", "lifo"])
async def test_lifo_chooses_which_idle_connection_goes_out(
    make_pool: PoolFactory, lifo: bool, expected: int
) -> None:
    pool = await make_pool(pool_size=3, lifo=lifo)
    held = [await pool.acquire() for _ in range(3)]
    threads = [conn.thread_id() for conn in held]
    assert len(set(threads)) == 3
    for conn in held:  # returned in order 0, 1, 2
        await pool.release(conn)
    async with pool.acquire() as conn:
        assert conn.thread_id() == threads[expected]
    pool.check_invariants()


# -------------------------------------------------------------- cold start


async def test_cold_start_burst_opens_pool_size_connections_in_parallel(
    make_pool: PoolFactory,
) -> None:
    in_flight = 0
    max_in_flight = 0
    all_in = asyncio.Event()

    async def init(conn: Any) -> None:
        nonlocal in_flight, max_in_flight
        assert isinstance(conn, drivers.connection_class())
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        if in_flight >= 20:
            all_in.set()
        try:
            # A pool that opens one at a time would sit here the full bound each.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(all_in.wait(), 0.5)
        finally:
            in_flight -= 1

    pool = await make_pool(pool_size=20, max_overflow=0, init=init)

    async def worker() -> None:
        async with pool.acquire(timeout=10) as conn:
            assert await scalar(conn, "SELECT SLEEP(0.05)") == 0

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(100))), 15)
    assert time.monotonic() - started < 5

    stats = pool.stats()
    assert stats.opened == 20
    assert max_in_flight >= 10
    assert (stats.acquires, stats.open, stats.idle, stats.timeouts) == (100, 20, 20, 0)
    pool.check_invariants()


# ---------------------------------------------------------- failed opens


async def test_failed_open_frees_its_slot_and_raises_to_that_caller(
    make_pool: PoolFactory,
) -> None:
    calls = 0

    async def init(conn: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("init failed once")

    pool = await make_pool(pool_size=1, max_overflow=0, init=init)
    with pytest.raises(RuntimeError, match="init failed once"):
        await pool.acquire(timeout=5)
    stats = pool.stats()
    assert (stats.open, stats.opening, stats.opened) == (0, 0, 0)
    pool.check_invariants()

    # The only slot is free again, so this does not time out.
    async with pool.acquire(timeout=5) as conn:
        assert await scalar(conn, "SELECT 1") == 1
    assert calls == 2
    assert pool.stats().opened == 1
    pool.check_invariants()


async def test_failed_open_passes_the_slot_to_the_next_waiter(make_pool: PoolFactory) -> None:
    calls = 0
    fail_now = asyncio.Event()

    async def init(conn: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await fail_now.wait()
            raise RuntimeError("first open failed")

    pool = await make_pool(pool_size=1, max_overflow=0, init=init)
    first = asyncio.ensure_future(pool.acquire(timeout=5))
    await until(lambda: calls == 1, what="first open in init")
    second = await queue_waiter(pool, pool.acquire(timeout=5))

    fail_now.set()
    with pytest.raises(RuntimeError, match="first open failed"):
        await first
    conn = await asyncio.wait_for(second, 5)  # the error went to `first` only
    assert await scalar(conn, "SELECT 1") == 1
    await pool.release(conn)
    stats = pool.stats()
    assert (stats.open, stats.opened, stats.acquires) == (1, 1, 1)
    pool.check_invariants()


async def test_unreachable_server_raises_the_driver_error(make_pool: PoolFactory) -> None:
    pool = await make_pool(
        drivers.on_driver("mysql://root:s3cr3t-pw@127.0.0.1:1/test"),
        pool_size=1,
        max_overflow=0,
        connect_timeout=1,
    )
    with pytest.raises(ERR.OperationalError) as caught:
        await pool.acquire(timeout=5)
    assert caught.value.args[0] == 2003
    assert "s3cr3t-pw" not in str(caught.value)
    assert (pool.stats().open, pool.stats().opening) == (0, 0)
    pool.check_invariants()

    # Two at once on one slot: the second waits, gets the slot back, fails too.
    results = await asyncio.wait_for(
        asyncio.gather(pool.acquire(timeout=5), pool.acquire(timeout=5), return_exceptions=True),
        10,
    )
    for result in results:
        assert isinstance(result, ERR.OperationalError), result
    stats = pool.stats()
    assert (stats.open, stats.opening, stats.waiting, stats.opened) == (0, 0, 0, 0)
    pool.check_invariants()


# --------------------------------------------------------------- lifecycle


async def test_acquire_after_close_raises_pool_closed(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1)
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT 1") == 1
    await pool.close()

    async def use() -> None:
        async with pool.acquire():
            pytest.fail("a closed pool handed out a connection")

    with pytest.raises(PoolClosed):
        await pool.acquire()
    with pytest.raises(PoolClosed):
        await use()
    with pytest.raises(PoolClosed):
        await pool.open()  # a closed pool never reopens
    assert pool.stats().open == 0


async def test_acquire_on_a_never_opened_pool_opens_it(mysql_dsn: str) -> None:
    pool = Pool(mysql_dsn, pool_size=2)
    try:
        assert " new " in repr(pool)
        async with pool.acquire() as conn:
            assert await scalar(conn, "SELECT 1") == 1
        assert " open " in repr(pool)
        assert len(pool) == 1
        pool.check_invariants()
    finally:
        await pool.close()
    assert pool.closed
    stats = pool.stats()
    assert (stats.open, stats.closed) == (0, 1)


# ----------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": "5"}, "pool_size"),
        ({"pool_size": True}, "pool_size"),
        ({"max_overflow": -1}, "max_overflow"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"recycle": 0}, "recycle"),
        ({"reset_on_return": "bogus"}, "reset_on_return"),
        ({"min_size": 6, "pool_size": 5}, "min_size"),
    ],
)
def test_bad_option_raises_value_error_naming_it(options: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        Pool(OFFLINE_DSN, **options)


@pytest.mark.parametrize("timeout", ["x", -1, float("nan")])
def test_acquire_with_a_bad_timeout_raises_value_error(timeout: Any) -> None:
    pool = Pool(OFFLINE_DSN)
    with pytest.raises(ValueError, match="timeout"):
        pool.acquire(timeout=timeout)


# ------------------------------------------------- deadlines of mixed timeouts


async def test_a_shorter_timeout_queued_behind_a_longer_one_expires_on_time(
    make_pool: PoolFactory,
) -> None:
    clock = ManualClock()
    pool = await make_pool(pool_size=1, max_overflow=0, clock=clock)
    held = await pool.acquire()
    patient = await queue_waiter(pool, pool.acquire(timeout=5))
    impatient = await queue_waiter(pool, pool.acquire(timeout=0.2))  # due before `patient`
    clock.advance(0.2)
    with pytest.raises(PoolTimeout):
        await impatient
    assert not patient.done()  # the earlier, longer wait goes on
    await pool.release(held)
    await pool.release(await patient)
    assert pool.stats().timeouts == 1
    pool.check_invariants()


async def test_a_waiter_due_before_the_shared_timer_expires_on_time(
    make_pool: PoolFactory,
) -> None:
    clock = ManualClock()
    pool = await make_pool(pool_size=1, max_overflow=0, clock=clock)
    held = await pool.acquire()
    # A long wait sets the shared timer far ahead, then leaves.
    leaver = await queue_waiter(pool, pool.acquire(timeout=30))
    leaver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaver
    short = await queue_waiter(pool, pool.acquire(timeout=0.2))
    clock.advance(0.2)
    with pytest.raises(PoolTimeout):
        await short
    await pool.release(held)
    stats = pool.stats()
    assert (stats.waiting, stats.timeouts) == (0, 1)
    pool.check_invariants()


async def test_many_waiters_share_one_timer(make_pool: PoolFactory) -> None:
    clock = ManualClock()
    pool = await make_pool(pool_size=1, max_overflow=0, timeout=30, clock=clock)
    held = await pool.acquire()
    before = clock.pending  # the reaper's
    waiters = [await queue_waiter(pool, pool.acquire()) for _ in range(50)]
    assert clock.pending == before + 1  # one for all of them, not one each
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    await pool.release(held)
    clock.advance(30)  # the shared timer comes due with nobody left to time out
    assert clock.pending == before  # and is not set again
    stats = pool.stats()
    assert (stats.waiting, stats.timeouts) == (0, 0)
    pool.check_invariants()
