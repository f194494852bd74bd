"""An I/O step that succeeds in the same instant its caller is cancelled
never drops its result on the floor: the caller gets it, or ``on_orphan``
does (and the connector closes it), whatever the Python version.

Found by the Python matrix: from 3.12 on, ``asyncio.wait_for`` no longer
returns a result that was ready when the cancel arrived, so a connection
opened for a cancelled acquire was left to the garbage collector
("Unclosed connection" ResourceWarning in the random-cancellation test).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mysqlpool._deadline import within


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

    caller = asyncio.ensure_future(within(step(), 10, on_orphan=orphans.append))
    try:
        got = await caller
    except asyncio.CancelledError:
        assert orphans == [opened]  # the caller never saw it: on_orphan did
    else:
        assert got is opened  # Python <= 3.11's wait_for returns it instead
        assert orphans == []


async def test_a_step_that_fails_has_no_orphan() -> None:
    orphans: list[Any] = []

    async def step() -> Opened:
        raise OSError("refused")

    with pytest.raises(OSError, match="refused"):
        await within(step(), 10, on_orphan=orphans.append)
    assert orphans == []


async def test_a_step_that_times_out_has_no_orphan() -> None:
    orphans: list[Any] = []
    never = asyncio.Event()

    async def step() -> Opened:
        await never.wait()
        return Opened()

    with pytest.raises(asyncio.TimeoutError):
        await within(step(), 0.01, on_orphan=orphans.append)
    assert orphans == []


async def test_a_caller_cancelled_before_the_step_began_leaves_no_coroutine_unawaited() -> None:
    orphans: list[Any] = []
    made: list[Opened] = []

    async def step() -> Opened:
        made.append(Opened())
        return made[-1]

    caller = asyncio.ensure_future(within(step(), 10, on_orphan=orphans.append))
    await asyncio.sleep(0)  # the caller has made the step's task; it hasn't run yet
    caller.cancel()
    try:
        got = await caller
    except asyncio.CancelledError:
        # Either the step never began (and, filterwarnings = error, no
        # "coroutine was never awaited" warning follows), or what it made
        # went to on_orphan.
        assert orphans == made
    else:
        assert [got] == made  # Python <= 3.11: wait_for hands back a result ready in time
        assert orphans == []
