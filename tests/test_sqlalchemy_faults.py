"""SQLAlchemy's asyncio engine on mysqlpool when things go wrong: discarded
connections, cancellation, abandoned connections, and many waiters.

Faults are real: KILL from a side connection, cancellation of the task
running the statement. Each test ends with nothing checked out and the
pool's books balanced (the ``make_engine`` fixture checks).
"""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
from typing import Any

import anyio
import pytest
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from conftest import Admin, Figure
from faultproxy import FaultProxy
from mysqlpool import parse_dsn
from mysqlpool.testing import ManualClock
from polling import until
from sa_support import EngineFactory, make_engine, pool_of, sa_url, table

__all__ = ["make_engine", "table"]  # the fixtures, imported for pytest


async def thread_of(conn: Any) -> int:
    """The server thread behind a SQLAlchemy AsyncConnection."""
    return int((await conn.execute(text("SELECT CONNECTION_ID()"))).scalar())


def track_sessions(engine: AsyncEngine) -> list[int]:
    """The server thread of every connection the engine opens, as it opens it."""
    threads: list[int] = []

    def opened(dbapi: Any, record: Any) -> None:
        threads.append(dbapi.driver_connection.thread_id())

    event.listen(engine.sync_engine, "connect", opened)
    return threads


async def alive(admin: Admin, threads: list[int]) -> list[int]:
    """Those of ``threads`` the server still has a session for."""
    return [thread for thread in threads if await admin.is_alive(thread)]


async def running(admin: Admin, thread: int) -> str | None:
    """The statement ``thread`` is running now, if any."""
    info = await admin.scalar(
        "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = %s AND COMMAND = 'Query'",
        thread,
    )
    return None if info is None else str(info)


# -- discards -------------------------------------------------------------------------


async def test_invalidate_discards_the_connection_and_keeps_the_slot(
    make_engine: EngineFactory, admin: Admin
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        first = await thread_of(conn)
        await conn.invalidate()
    await until(lambda: _gone(admin, first), "the invalidated session ended")
    async with engine.connect() as conn:
        assert await thread_of(conn) != first
    stats = pool_of(engine).stats()
    assert (stats.discarded, stats.open, stats.in_use) == (1, 1, 0)


async def test_a_session_killed_while_checked_out_is_discarded(
    make_engine: EngineFactory, admin: Admin
) -> None:
    engine = make_engine(pool_size=2, max_overflow=0)
    async with engine.connect() as conn:
        victim = await thread_of(conn)
        await admin.scalar(f"KILL {victim}")
        with pytest.raises(exc.DBAPIError) as lost:
            await conn.execute(text("SELECT 1"))
        assert lost.value.connection_invalidated
    async with engine.connect() as a, engine.connect() as b:  # both slots still there
        assert victim not in (await thread_of(a), await thread_of(b))
    assert pool_of(engine).stats().discarded == 1


async def test_a_session_killed_while_idle_never_reaches_the_caller(
    make_engine: EngineFactory, admin: Admin
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        victim = await thread_of(conn)
    await admin.scalar(f"KILL {victim}")
    await until(lambda: _gone(admin, victim), "the killed session ended")
    sessions = async_sessionmaker(engine)
    async with sessions() as session:  # no 2013 here: mysqlpool saw it die
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
    assert pool_of(engine).stats().discarded == 1


async def test_a_failed_pre_ping_replaces_the_connection_silently(
    make_engine: EngineFactory, admin: Admin
) -> None:
    clock = ManualClock()
    engine = make_engine(
        pool_size=1, max_overflow=0, pool_pre_ping=True, mysqlpool_options={"clock": clock}
    )
    async with engine.connect() as conn:
        victim = await thread_of(conn)
    await admin.scalar(f"KILL {victim}")
    await until(lambda: _gone(admin, victim), "the killed session ended")
    clock.advance(2)  # idle past pre_ping's threshold: pinged (or found dead) first
    async with engine.connect() as conn:
        assert await thread_of(conn) != victim
    assert pool_of(engine).stats().discarded == 1


async def test_sqlalchemys_reconnect_on_checkout_takes_another_from_mysqlpool(
    make_engine: EngineFactory, admin: Admin
) -> None:
    engine = make_engine(pool_size=2, max_overflow=0)
    refused: list[int] = []

    def checkout(dbapi: Any, record: Any, proxy: Any) -> None:
        if not refused:  # SQLAlchemy's documented way to say "this one is dead"
            refused.append(dbapi.driver_connection.thread_id())
            raise exc.DisconnectionError("refused by the test")

    async with engine.connect() as conn:
        first = await thread_of(conn)
    event.listen(engine.sync_engine, "checkout", checkout)
    async with engine.connect() as conn:
        assert refused == [first]
        assert await thread_of(conn) != first
    await until(lambda: _gone(admin, first), "the refused session ended")
    stats = pool_of(engine).stats()
    assert (stats.discarded, stats.in_use, stats.open) == (1, 0, 1)


async def test_a_disconnect_invalidates_the_connections_opened_before_it(
    make_engine: EngineFactory, admin: Admin
) -> None:
    engine = make_engine(pool_size=3, max_overflow=0)
    threads = track_sessions(engine)
    async with engine.connect() as a, engine.connect() as b, engine.connect() as c:
        for conn in (a, b, c):
            await conn.execute(text("SELECT 1"))
    victim_conn = await engine.connect()
    victim = await thread_of(victim_conn)
    await admin.scalar(f"KILL {victim}")
    with pytest.raises(exc.DBAPIError):
        await victim_conn.execute(text("SELECT 1"))  # SQLAlchemy: invalidate the pool
    await victim_conn.close()
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    stats = pool_of(engine).stats()
    assert stats.opened == 4  # all three old ones went, a new one came
    assert await alive(admin, threads[:3]) == []


# -- cancellation ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "wait_for", "anyio"])
async def test_a_cancelled_query_is_stopped_on_the_server(
    make_engine: EngineFactory, admin: Admin, how: str, figure: Figure
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    sessions = async_sessionmaker(engine)
    threads = track_sessions(engine)
    started = asyncio.Event()

    async def slow() -> None:
        async with sessions() as session:
            started.set()
            await session.execute(text("SELECT SLEEP(5)"))

    if how == "cancel":
        task = asyncio.ensure_future(slow())
        await started.wait()
        await until(lambda: _running_sleep(admin, threads), "SLEEP runs on the server")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif how == "wait_for":
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.3)
    else:
        with anyio.move_on_after(0.3) as scope:
            await slow()
        assert scope.cancelled_caught
    loop = asyncio.get_running_loop()
    began = loop.time()
    await until(lambda: _nothing_running(admin, threads), "the SLEEP stopped", timeout=1)
    figure(f"SLEEP(5) still running after {how} (s)", round(loop.time() - began, 3))
    stats = pool_of(engine).stats()
    assert (stats.in_use, stats.discarded) == (0, 1)
    async with sessions() as session:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1


async def test_a_cancel_mid_rollback_discards_the_connection(
    make_engine: EngineFactory, admin: Admin, table: str
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    sessions = async_sessionmaker(engine)
    threads = track_sessions(engine)
    session = sessions()
    await session.execute(text(f"INSERT INTO {table} (v) SELECT seq FROM seq_1_to_300000"))
    rolling_back = asyncio.ensure_future(session.rollback())  # undoing 300k rows takes a while

    async def in_rollback() -> bool:
        return await running(admin, threads[0]) == "ROLLBACK"

    await until(in_rollback, "the ROLLBACK runs on the server")
    rolling_back.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rolling_back
    await session.close()
    stats = pool_of(engine).stats()
    assert (stats.in_use, stats.discarded) == (0, 1)  # its state unknown: closed
    async with sessions() as again:  # the slot is free; the server finished the rollback
        assert (await again.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar() == 0
        assert (await again.execute(text("SELECT CONNECTION_ID()"))).scalar() != threads[0]


async def test_a_cancelled_waiter_takes_no_slot(make_engine: EngineFactory) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    async with engine.connect() as held:
        await held.execute(text("SELECT 1"))
        waiter = asyncio.ensure_future(engine.connect().start())
        await until(lambda: pool_of(engine).stats().waiting == 1, "the second checkout waits")
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool_of(engine).stats().waiting == 0
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    assert pool_of(engine).stats().in_use == 0


async def test_a_checkout_cancelled_while_connecting_leaves_no_socket(
    make_engine: EngineFactory, mysql_dsn: str
) -> None:
    target = parse_dsn(mysql_dsn)
    async with FaultProxy(target.host, target.port) as proxy:
        proxy.latency(0.5)  # the handshake takes a while
        engine = make_engine(sa_url(proxy.dsn(mysql_dsn)), pool_size=1, max_overflow=0)
        task = asyncio.ensure_future(engine.connect().start())
        await until(lambda: pool_of(engine).stats().opening == 1, "a connection is opening")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = pool_of(engine).stats()
        assert (stats.opening, stats.open, stats.in_use) == (0, 0, 0)
        await until(lambda: proxy.open == 0, "the half-open connection was closed")
        proxy.latency(0)
        async with engine.connect() as conn:  # the slot is free again
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1


async def test_a_storm_of_cancels_leaves_nothing_behind(
    make_engine: EngineFactory, admin: Admin, table: str, figure: Figure
) -> None:
    engine = make_engine(pool_size=5, max_overflow=5, pool_timeout=30)
    sessions = async_sessionmaker(engine)
    threads = track_sessions(engine)
    rng = random.Random(12)

    async def work(n: int) -> None:
        kind = n % 4
        if kind == 0:  # a read
            async with sessions() as session:
                await session.execute(text("SELECT SLEEP(:s)"), {"s": rng.random() / 50})
        elif kind == 1:  # a write, committed
            async with sessions() as session:
                await session.execute(text(f"INSERT INTO {table} (v) VALUES (:n)"), {"n": n})
                await session.commit()
        elif kind == 2:  # a write left to the rollback
            async with sessions() as session:
                await session.execute(text(f"INSERT INTO {table} (v) VALUES (:n)"), {"n": -n})
                await session.execute(text("SELECT SLEEP(:s)"), {"s": rng.random() / 50})
        else:  # engine.connect() with a stream
            async with engine.connect() as conn:
                result = await conn.stream(text("SELECT seq FROM seq_1_to_2000"))
                async for _ in result:
                    pass

    tasks = [asyncio.ensure_future(work(n)) for n in range(200)]
    for _ in range(100):  # cancel at random moments: waiting, connecting, mid-query...
        await asyncio.sleep(rng.random() / 500)
        pending = [task for task in tasks if not task.done()]
        if not pending:
            break
        rng.choice(pending).cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    failed = [r for r in results if isinstance(r, BaseException)
              and not isinstance(r, asyncio.CancelledError)]
    assert failed == []
    figure("storm: tasks cancelled / completed", f"{cancelled} / {200 - cancelled}")
    pool = pool_of(engine)
    await until(lambda: pool.stats().in_use == 0, "every connection came back")
    stats = pool.stats()
    assert (stats.in_use, stats.opening, stats.waiting) == (0, 0, 0)
    pool.check_invariants()
    # The server ends up with exactly the sessions the pool holds: none left over.
    async def only_the_pools() -> bool:
        return len(await alive(admin, threads)) == stats.open

    await until(only_the_pools, "the server has only the pool's sessions")
    assert await admin.scalar(f"SELECT COUNT(*) FROM {table} WHERE v < 0") == 0
    await engine.dispose()
    await until(lambda: _all_gone(admin, threads), "every session ended after dispose")


# -- abandoned connections ------------------------------------------------------------


async def test_garbage_collection_of_an_abandoned_connection_frees_its_slot(
    make_engine: EngineFactory, admin: Admin
) -> None:
    engine = make_engine(pool_size=1, max_overflow=0)
    conn = await engine.connect()
    thread = await thread_of(conn)
    assert pool_of(engine).stats().in_use == 1
    del conn  # abandoned: never closed
    with pytest.warns(Warning, match="garbage collector is trying to clean up"):
        gc.collect()
    assert pool_of(engine).stats().in_use == 0
    await until(lambda: _gone(admin, thread), "the abandoned session ended")
    async with engine.connect() as again:  # the one slot is free
        assert await thread_of(again) != thread


# -- many waiters ---------------------------------------------------------------------


async def test_no_task_starves(make_engine: EngineFactory, figure: Figure) -> None:
    engine = make_engine(pool_size=5, max_overflow=0, pool_timeout=60)
    sessions = async_sessionmaker(engine)
    served = [0] * 200
    stop = asyncio.Event()

    async def client(n: int) -> None:
        while not stop.is_set():
            async with sessions() as session:
                await session.execute(text("SELECT 1"))
            served[n] += 1
            if sum(served) >= 2000:
                stop.set()

    await asyncio.gather(*(client(n) for n in range(200)))
    figure("200 tasks on 5 connections: fewest / median / most served", (
        f"{min(served)} / {statistics.median(served)} / {max(served)}"
    ))
    assert min(served) >= 1
    assert max(served) <= 3 * statistics.median(served)


# -- helpers --------------------------------------------------------------------------


async def _gone(admin: Admin, thread: int) -> bool:
    return not await admin.is_alive(thread)


async def _all_gone(admin: Admin, threads: list[int]) -> bool:
    return not await alive(admin, threads)


async def _running_sleep(admin: Admin, threads: list[int]) -> bool:
    for thread in threads:
        info = await running(admin, thread)
        if info is not None and "SLEEP" in info:
            return True
    return False


async def _nothing_running(admin: Admin, threads: list[int]) -> bool:
    return not await _running_sleep(admin, threads)
