"""Leak detection: a warning, with where it was acquired, for a connection
held longer than ``leak_timeout``."""

from __future__ import annotations

import logging
import os
import traceback

from ._clock import Clock
from ._entry import Entry

__all__ = ["LeakDetector"]

logger = logging.getLogger("mysqlpool")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class LeakDetector:
    """Arms a timer at each checkout and disarms it at the return.

    The stack is taken at the checkout, since by the time the timer fires
    the code that acquired the connection may be long gone.
    """

    __slots__ = ("_clock", "_pool_name", "timeout")

    def __init__(self, clock: Clock, timeout: float, pool_name: str) -> None:
        self._clock = clock
        self.timeout = timeout
        self._pool_name = pool_name

    def watch(self, entry: Entry) -> None:
        """``entry`` was just checked out."""
        clock = self._clock
        entry.leak_timer = clock.call_at(clock.now() + self.timeout, self._report, _caller_stack())

    @staticmethod
    def unwatch(entry: Entry) -> None:
        """``entry`` came back, or is being closed."""
        if entry.leak_timer is not None:
            entry.leak_timer.cancel()
            entry.leak_timer = None

    def _report(self, stack: list[str]) -> None:
        logger.warning(
            "pool %s: a connection has been checked out for more than %s s "
            "(possible leak); acquired at:\n%s",
            self._pool_name,
            self.timeout,
            "".join(stack),
        )


def _caller_stack() -> list[str]:
    """The current stack, minus the pool's own frames at its end: where acquire() was called."""
    frames = traceback.extract_stack()
    while frames and os.path.dirname(os.path.abspath(frames[-1].filename)) == _PACKAGE_DIR:
        frames.pop()
    return traceback.format_list(frames)
