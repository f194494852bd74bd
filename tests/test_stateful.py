"""A hypothesis state machine drives the real pool through random sequences.

Acquire, release, release after the server killed the session, cancel a
waiter, cancel a holder mid-query, run a reaper pass, close: after every
step the pool's books must balance (``check_invariants``: slots = idle +
in use + opening, nothing above the maximum, no waiter queued while a
connection is idle or a slot free) and every held connection must answer
its own queries correctly.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiomysql
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mysqlpool import Pool, PoolClosed, PoolTimeout, parse_dsn
from mysqlpool.testing import ManualClock
from polling import until

POOL_SIZE, MAX_OVERFLOW = 2, 1
TIMEOUT = 0.2  # acquire timeout, on the machine's clock
REAPER_INTERVAL = 3600.0  # on the machine's clock: a pass only when a rule moves it


class PoolMachine(RuleBasedStateMachine):
    dsn: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.pool = Pool(
            self.dsn, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, timeout=TIMEOUT,
            reaper_interval=REAPER_INTERVAL, clock=self.clock,
        )
        self.run(self.pool.open())
        self.admin = self.run(aiomysql.connect(**parse_dsn(self.dsn).connect_kwargs()))
        self.held: list[Any] = []
        self.closed = False
        self.counter = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _query(self, conn: Any, value: int) -> int:
        async with conn.cursor() as cur:
            await cur.execute("SELECT %s", (value,))
            (answer,) = await cur.fetchone()
        return int(answer)

    @precondition(lambda self: not self.closed)
    @rule()
    def acquire(self) -> None:
        async def attempt() -> Any:
            task = asyncio.ensure_future(self.pool.acquire())
            if len(self.held) == POOL_SIZE + MAX_OVERFLOW:
                # Every slot is held: it queues, and times out when its
                # timeout has passed on the pool's clock.
                await until(lambda: self.pool.stats().waiting == 1 or task.done(), "queued")
                self.clock.advance(TIMEOUT)
            return await task

        try:
            conn = self.run(attempt())
        except PoolTimeout:
            assert len(self.held) == POOL_SIZE + MAX_OVERFLOW
            return
        self.held.append(conn)

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0), fail=st.booleans())
    def release(self, index: int, fail: bool) -> None:
        conn = self.held.pop(index % len(self.held))
        if fail:  # the holder's code raised an ordinary error: conn stays usable
            ctx_error: BaseException | None = ValueError("user code failed")
            self.run(self.pool.release(conn, error=ctx_error))
        else:
            self.run(self.pool.release(conn))

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0))
    def server_kills_a_held_session(self, index: int) -> None:
        conn = self.held.pop(index % len(self.held))

        async def kill_then_use() -> None:
            async with self.admin.cursor() as cur:
                await cur.execute(f"KILL {int(conn.thread_id())}")
            try:
                await self._query(conn, 1)
            except Exception as exc:  # 2013 / 2006: the connection is gone
                await self.pool.release(conn, error=exc)
            else:
                raise AssertionError("a killed session answered")

        self.run(kill_then_use())

    @precondition(lambda self: not self.closed)
    @rule()
    def cancel_a_waiter_or_acquirer(self) -> None:
        async def start_and_cancel() -> None:
            task = asyncio.ensure_future(self.pool.acquire())
            await asyncio.sleep(0)
            task.cancel()
            try:
                conn = await task
            except (asyncio.CancelledError, PoolTimeout, PoolClosed):
                return
            self.held.append(conn)  # it won the race: it is ours now

        self.run(start_and_cancel())

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0))
    def cancel_a_holder_mid_query(self, index: int) -> None:
        conn = self.held.pop(index % len(self.held))

        async def cancelled_query() -> None:
            task = asyncio.ensure_future(self._query_slowly(conn))
            await asyncio.sleep(0.01)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError as exc:
                await self.pool.release(conn, error=exc)

        self.run(cancelled_query())

    async def _query_slowly(self, conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute("SELECT SLEEP(0.5)")

    @rule()
    def reaper_pass(self) -> None:
        async def one_pass() -> None:
            # The reaper sleeps on the pool's clock: moving it wakes the reaper
            # (and fires any stale waiter deadline), which runs its pass and
            # goes back to sleep, its timer set again. A closed pool's reaper
            # has ended: nothing wakes.
            self.clock.advance(REAPER_INTERVAL)
            if self.closed:
                assert self.clock.pending == 0
            else:
                await until(lambda: self.clock.pending >= 1, "the reaper asleep again")

        self.run(one_pass())

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.closed = True
        for conn in self.held:
            self.run(self.pool.release(conn))
        self.held.clear()
        self.run(self.pool.close(timeout=2))
        assert self.pool.stats().open == 0

    @invariant()
    def books_balance(self) -> None:
        self.pool.check_invariants()
        stats = self.pool.stats()
        assert stats.open == stats.idle + stats.in_use
        assert stats.in_use == len(self.held)
        assert stats.open <= POOL_SIZE + MAX_OVERFLOW

    @invariant()
    def held_connections_answer_their_own_queries(self) -> None:
        for conn in self.held:
            self.counter += 1
            assert self.run(self._query(conn, self.counter)) == self.counter

    def teardown(self) -> None:
        try:
            for conn in self.held:
                self.run(self.pool.release(conn))
            self.run(self.pool.close(timeout=2))
            self.admin.close()
            self.run(asyncio.sleep(0))  # let closed transports finish
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                self.run(task)  # KILL QUERY tasks: short, bounded
        finally:
            self.loop.close()


@pytest.mark.slow
def test_random_sequences_keep_the_books(mysql_dsn: str) -> None:
    PoolMachine.dsn = mysql_dsn
    runner = PoolMachine.TestCase
    runner.settings = settings(
        max_examples=int(os.environ.get("MYSQLPOOL_STATEFUL_EXAMPLES", "12")),
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    runner().runTest()
