"""One open connection of a pool, and what the pool knows about it."""

from __future__ import annotations

import math
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
        "expires_at",
        "host",
        "idle_since",
        "leak_timer",
        "retire_at",
        "returning",
    )

    def __init__(self, conn: Any, host: Host, now: float) -> None:
        self.conn = conn
        self.host = host  # the server it is connected to
        # When it is too old to reuse, on the pool's clock: set by Aging at
        # the open and at each checkout (recycle counts from there), never
        # after retire_at (max_lifetime, counted from the open).
        self.expires_at = math.inf
        self.retire_at = math.inf
        # When it last became free (returned, or handed straight to a waiter,
        # whose checkout counts from then): decides whether pre_ping pings.
        self.idle_since = now
        # The driver's marker (Driver.probe) as of when it last became free:
        # opened, returned clean, or reset. Nothing runs on a free connection,
        # so it is the marker at its next checkout, which tells at the return
        # whether a statement ran (Driver.returned_state).
        self.checkout_marker: object = None
        # True from its release until the next checkout: a second release of
        # the same checkout is refused while it is set.
        self.returning = False
        self.leak_timer: Timer | None = None  # set while checked out, with leak_timeout

    def __repr__(self) -> str:
        return f"<Entry {self.host.label} expires_at={self.expires_at:.3f}>"
