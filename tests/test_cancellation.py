"""Cancellation at random points never leaks a connection or hands out a
desynchronised one.

Each worker checks that ``SELECT <its own number>`` answers its own number:
a connection handed on with an unread reply from a cancelled holder would
answer someone else's query. Workers are cancelled at random moments:
waiting, opening, mid-query, during the return's ROLLBACK or reset.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from conftest import PoolFactory

WORKERS = 60
ROUNDS = 8


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        {"reset_on_return": "rollback", "autocommit": False},  # a ROLLBACK on every return
        {"reset_on_return": "reset"},  # COM_RESET_CONNECTION + restore on every return
        {"reset_on_return": "rollback", "pre_ping": 0},  # a ping on every checkout
    ],
    ids=["rollback", "reset", "pre_ping"],
)
async def test_random_cancellations_leak_nothing_and_never_mix_replies(
    make_pool: PoolFactory, options: dict[str, Any]
) -> None:
    pool = await make_pool(pool_size=4, max_overflow=2, timeout=5, **options)
    rng = random.Random(20261125)
    wrong: list[tuple[int, int]] = []
    done = 0

    async def one_round(number: int) -> None:
        async with pool.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT %s, SLEEP(%s)", (number, rng.choice([0, 0, 0.002])))
                (answer, _) = await cur.fetchone()
            if answer != number:
                wrong.append((number, answer))

    async def worker(number: int) -> None:
        nonlocal done
        for _ in range(ROUNDS):
            task = asyncio.ensure_future(one_round(number))
            # Cancel about a third of the rounds, at a random moment.
            if rng.random() < 0.35:
                asyncio.get_running_loop().call_later(rng.uniform(0, 0.01), task.cancel)
            try:
                await task
                done += 1
            except asyncio.CancelledError:
                pass

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(WORKERS))), 60)

    assert wrong == []
    assert done > WORKERS * ROUNDS // 3  # the workload really ran
    # Every connection came back on its own: close() has nothing to terminate.
    assert (pool.stats().in_use, pool.stats().opening) == (0, 0)
    await pool.close(timeout=5)  # awaits any KILL QUERY tasks too
    stats = pool.stats()
    assert (stats.open, stats.in_use, stats.opening, stats.waiting) == (0, 0, 0, 0)
    pool.check_invariants()
