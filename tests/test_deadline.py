"""The pool's bounded I/O steps never lose a cancellation, nor what a step opened.

``mysqlpool._deadline.within`` wraps every connect (and the KILL QUERY side
connection). Python 3.11's ``asyncio.wait_for`` returned the step's result
when its caller was cancelled in the loop pass the step ended in, dropping
the cancellation: an acquire cancelled because its HTTP client hung up went
on to run its statement (benchmarks/http_load.py's burst). These drive that
exact interleaving with plain asyncio, no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import pytest

from mysqlpool._deadline import within

OPENED = "a connection"


async def test_a_cancellation_in_the_pass_the_step_ends_goes_on() -> None:
    discarded: list[Any] = []
    caller: asyncio.Task[Any] | None = None

    async def step() -> str:
        await asyncio.sleep(0)
        assert caller is not None
        caller.cancel()  # the caller is cancelled just as the step ends
        return OPENED

    caller = asyncio.create_task(within(step(), 5.0, discarded.append))
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert discarded == [OPENED]  # closed, not leaked


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")
async def test_a_cancellation_swallowed_inside_the_step_is_honoured() -> None:
    """aiomysql's own wait_for around its TCP connect can swallow it too."""
    discarded: list[Any] = []
    started = asyncio.Event()

    async def swallowing_step() -> str:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # as a step that lost it would
            await asyncio.sleep(10)
        return OPENED

    caller = asyncio.create_task(within(swallowing_step(), None, discarded.append))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert discarded == [OPENED]


async def test_a_step_past_its_time_is_cancelled_and_times_out() -> None:
    step_cancelled = asyncio.Event()

    async def slow_step() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            step_cancelled.set()
            raise
        return OPENED

    with pytest.raises(asyncio.TimeoutError):
        await within(slow_step(), 0.01, None)
    assert step_cancelled.is_set()


async def test_a_step_in_time_gives_its_result_and_its_errors() -> None:
    async def quick() -> str:
        return OPENED

    async def failing() -> str:
        raise ConnectionRefusedError("no")

    assert await within(quick(), 1.0) == OPENED
    assert await within(quick(), None) == OPENED
    with pytest.raises(ConnectionRefusedError):
        await within(failing(), 1.0)


async def test_a_caller_cancelled_mid_step_cancels_the_step() -> None:
    step_cancelled = asyncio.Event()
    started = asyncio.Event()

    async def slow_step() -> str:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            step_cancelled.set()
            raise
        return OPENED

    caller = asyncio.create_task(within(slow_step(), 5.0))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert step_cancelled.is_set()


# -- a result ready as its caller stops (found by the Python matrix: from 3.12
# on, asyncio.wait_for no longer returns a result that was ready when the
# cancel arrived, so a connection opened for a cancelled acquire was left to
# the garbage collector)

class Opened:
    """Stands for an open connection: something that must not be lost."""


@pytest.mark.parametrize(
    "when",
    [
        "as the step returns",  # the cancel reaches the step's task on its last step
        "after the step returned",  # ...or the caller, before it resumes with the result
    ],
)
async def test_a_result_ready_as_its_caller_is_cancelled_is_never_lost(when: str) -> None:
    opened = Opened()
    orphans: list[Any] = []
    caller: asyncio.Task[Any]

    async def step() -> Opened:
        if when == "as the step returns":
            caller.cancel()
        else:
            asyncio.get_running_loop().call_soon(caller.cancel)
        return opened

    caller = asyncio.ensure_future(within(step(), 10, discard=orphans.append))
    try:
        got = await caller
    except asyncio.CancelledError:
        assert orphans == [opened]  # the caller never saw it: discard did
    else:
        assert got is opened  # Python <= 3.11's wait_for returns it instead
        assert orphans == []


async def test_a_step_that_fails_has_no_orphan() -> None:
    orphans: list[Any] = []

    async def step() -> Opened:
        raise OSError("refused")

    with pytest.raises(OSError, match="refused"):
        await within(step(), 10, discard=orphans.append)
    assert orphans == []


async def test_a_step_that_times_out_has_no_orphan() -> None:
    orphans: list[Any] = []
    never = asyncio.Event()

    async def step() -> Opened:
        await never.wait()
        return Opened()

    with pytest.raises(asyncio.TimeoutError):
        await within(step(), 0.01, discard=orphans.append)
    assert orphans == []


async def test_a_caller_cancelled_before_the_step_began_leaves_no_coroutine_unawaited() -> None:
    orphans: list[Any] = []
    made: list[Opened] = []

    async def step() -> Opened:
        made.append(Opened())
        return made[-1]

    caller = asyncio.ensure_future(within(step(), 10, discard=orphans.append))
    await asyncio.sleep(0)  # the caller has made the step's task; it hasn't run yet
    caller.cancel()
    try:
        got = await caller
    except asyncio.CancelledError:
        # Either the step never began (and, filterwarnings = error, no
        # "coroutine was never awaited" warning follows), or what it made
        # went to discard.
        assert orphans == made
    else:
        assert [got] == made  # Python <= 3.11: wait_for hands back a result ready in time
        assert orphans == []
