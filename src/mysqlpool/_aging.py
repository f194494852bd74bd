"""The retire rules: when an idle connection is unfit, and when a healthy
connection is retired for its age.

``recycle`` counts from the activity stamp (the open, then each checkout)
and keeps the server's ``wait_timeout`` from closing a pooled connection
first; ``max_lifetime`` counts from the open, whatever the use. The rule is
written once, here, as a deadline stamped on the connection: at the open
(:meth:`Aging.opened`) and at each checkout (:meth:`Aging.checked_out`).
Checkout, return and the reaper then only compare the clock with
``entry.expires_at``.
"""

from __future__ import annotations

import math

from ._driver import DEAD
from ._entry import Entry

__all__ = ["Aging", "auto_recycle"]


def auto_recycle(wait_timeout: float) -> float:
    """The ``recycle`` that ``recycle="auto"`` picks for a server ``wait_timeout``.

    10% below it, at least 1 s and at most 5 minutes of margin, and never
    less than half of it, so a pooled connection is always retired by the
    pool before the server times it out.
    """
    margin = min(max(wait_timeout * 0.1, 1.0), 300.0)
    return max(wait_timeout - margin, wait_timeout / 2)


class Aging:
    """A pool's ``recycle`` and ``max_lifetime``, stamped on its connections.

    Args:
        recycle: seconds, None (off) or ``"auto"`` (learnt from the servers'
            ``wait_timeout``, see :meth:`learn_wait_timeout`).
        max_lifetime: seconds, or None (off).
    """

    __slots__ = ("_recycle_span", "auto", "max_lifetime", "recycle")

    def __init__(self, recycle: float | str | None, max_lifetime: float | None) -> None:
        self.auto = recycle == "auto"
        self.max_lifetime = max_lifetime
        self.recycle: float | None = None
        self._recycle_span = math.inf
        if not isinstance(recycle, str):
            self._set_recycle(recycle)

    def _set_recycle(self, recycle: float | None) -> None:
        self.recycle = recycle  # for "auto", None until the first server reports
        self._recycle_span = math.inf if recycle is None else recycle

    def opened(self, entry: Entry, now: float) -> None:
        """Stamp a connection opened at ``now``."""
        entry.retire_at = math.inf if self.max_lifetime is None else now + self.max_lifetime
        self.checked_out(entry, now)

    def checked_out(self, entry: Entry, now: float) -> None:
        """Stamp a connection checked out at ``now``: recycle starts again."""
        recycled_at = now + self._recycle_span
        retire_at = entry.retire_at
        entry.expires_at = recycled_at if recycled_at < retire_at else retire_at

    def unfit(self, entry: Entry, now: float, probed: object) -> str | None:
        """Why an idle connection must not be handed out (``probed`` is what
        the driver's probe says of it now): its server hung up, or it is too
        old; None when it may be. At checkout, and by the reaper between uses."""
        if probed is DEAD:
            return "closed by the server"
        if now >= entry.expires_at:
            return self.reason(entry, now)
        return None

    def reason(self, entry: Entry, now: float) -> str:
        """Why a connection past ``expires_at`` is retired: ``"max_lifetime"``
        or ``"recycle"``."""
        return "max_lifetime" if now >= entry.retire_at else "recycle"

    def learn_wait_timeout(self, wait_timeout: float) -> bool:
        """With ``recycle="auto"``: keep below this server's ``wait_timeout``
        too (the servers of a list may differ). True if recycle went down.

        Connections already stamped keep their deadline until their next
        checkout; it was set below their own server's ``wait_timeout``.
        """
        recycle = auto_recycle(wait_timeout)
        if self.auto and (self.recycle is None or recycle < self.recycle):
            self._set_recycle(recycle)
            return True
        return False

    def reaper_period(self, interval: float | None) -> float:
        """Seconds between reaper passes: ``interval``, else a quarter of the
        shortest age limit (between 0.05 s and a minute), else a minute."""
        if interval is not None:
            return interval
        limits = [limit for limit in (self.recycle, self.max_lifetime) if limit is not None]
        if not limits:
            return 60.0
        return min(max(min(limits) / 4, 0.05), 60.0)
