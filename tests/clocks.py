"""Driving a pool's :class:`~mysqlpool.testing.ManualClock` from a test.

A task of the pool that sleeps on the clock (the reaper between passes, the
host prober until a backoff ends) holds one timer while it sleeps. When
``clock.advance()`` runs that timer, the task wakes at the next loop turn,
does its work (network I/O included, which takes real time) and goes back
to sleep on the clock, setting a new timer. So "the clock holds as many
timers as the pool sets while it is at rest" means "whatever the advance
woke up has finished": :func:`settle` waits for exactly that state, and
:func:`advance` moves the clock in steps with a :func:`settle` after each,
as a real clock would give the pool's tasks time to run between passes.

Nothing here sleeps: the clock moves only when a test moves it.
"""

from __future__ import annotations

import math

from mysqlpool.testing import ManualClock
from polling import until


async def settle(clock: ManualClock, timers: int = 1) -> None:
    """Wait until ``clock`` holds ``timers`` timers again: the pool's tasks
    the clock woke have done their work and sleep on it again.

    ``timers`` is how many the pool sets while at rest: 1 for a pool whose
    only sleeper is its reaper (no checked-out connection with a
    ``leak_timeout``, no waiter with a deadline, no host down).
    """
    await until(
        lambda: clock.pending >= timers,
        f"the pool's tasks asleep on the clock again ({timers} timer(s) set; {clock!r})",
    )


async def advance(
    clock: ManualClock, seconds: float, *, step: float, timers: int = 1
) -> list[float]:
    """Move ``clock`` forward by ``seconds`` in steps of ``step`` seconds,
    letting the pool's tasks finish what each step woke them for
    (:func:`settle`, also once before the first step, so a task that has not
    gone to sleep yet does so before the clock moves).

    Returns the clock's time after each step at which a timer ran (a task
    sleeping on the clock woke): with only the reaper's timer set, the times
    of its passes.

    Raises:
        ValueError: ``seconds`` is not a whole number of steps.
    """
    steps = round(seconds / step)
    if steps < 0 or not math.isclose(steps * step, seconds, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"advance({seconds}) is not a whole number of {step} s steps")
    await settle(clock, timers)
    woke: list[float] = []
    for _ in range(steps):
        before = clock.pending
        clock.advance(step)
        if clock.pending < before:
            woke.append(clock.now())
        await settle(clock, timers)
    return woke
