"""One open connection of a pool, and what the pool knows about it."""

from __future__ import annotations

from typing import Any

from ._clock import Timer
from ._hosts import Host

__all__ = ["Entry"]


class Entry:
    """A pooled connection with its timestamps (on the pool's clock) and state.

    The pool's bookkeeping holds entries; its users only ever see ``conn``.
    """

    __slots__ = (
        "checkout_marker",
        "conn",
        "host",
        "idle_since",
        "leak_timer",
        "opened_at",
        "returning",
        "stamp",
    )

    def __init__(self, conn: Any, host: Host, now: float) -> None:
        self.conn = conn
        self.host = host  # the server it is connected to
        self.opened_at = now  # for max_lifetime
        self.stamp = now  # activity stamp: open, then each checkout (recycle)
        self.idle_since = now  # last return: decides whether pre_ping pings
        # The driver's result marker at checkout: tells whether a statement
        # ran since (needs_rollback).
        self.checkout_marker: object = None
        # True from its release until the next checkout: a second release of
        # the same checkout is refused while it is set.
        self.returning = False
        self.leak_timer: Timer | None = None  # set while checked out, with leak_timeout

    def __repr__(self) -> str:
        return f"<Entry {self.host.label} opened_at={self.opened_at:.3f} stamp={self.stamp:.3f}>"
