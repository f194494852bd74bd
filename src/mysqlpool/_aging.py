"""The age rules: when a healthy connection is retired for its age.

``recycle`` counts from the activity stamp (set at open and at each
checkout) and keeps the server's ``wait_timeout`` from closing a pooled
connection first; ``max_lifetime`` counts from the open, whatever the use.
Both are checked at checkout, at return and by the reaper, through
:meth:`Aging.expired`, the one place the rule is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    """A pool's ``recycle`` and ``max_lifetime``, and the tests that apply them.

    Args:
        recycle: seconds, None (off) or ``"auto"`` (learnt from the servers'
            ``wait_timeout``, see :meth:`learn_wait_timeout`).
        max_lifetime: seconds, or None (off).
        is_dead: the driver's no-round-trip liveness test, for idle connections.
    """

    __slots__ = ("auto", "is_dead", "max_lifetime", "recycle")

    def __init__(
        self,
        recycle: float | str | None,
        max_lifetime: float | None,
        is_dead: Callable[[Any], bool],
    ) -> None:
        self.auto = recycle == "auto"
        # For "auto", None until the first server reports its wait_timeout.
        self.recycle: float | None = None if isinstance(recycle, str) else recycle
        self.max_lifetime = max_lifetime
        self.is_dead = is_dead

    def expired(self, entry: Entry, now: float) -> str | None:
        """``"recycle"`` or ``"max_lifetime"`` when ``entry`` is too old at ``now``, else None."""
        recycle = self.recycle
        if recycle is not None and now - entry.stamp >= recycle:
            return "recycle"
        lifetime = self.max_lifetime
        if lifetime is not None and now - entry.opened_at >= lifetime:
            return "max_lifetime"
        return None

    def unfit_idle(self, entry: Entry, now: float) -> str | None:
        """Why an idle connection must not be handed out: its server hung up,
        or it is too old; None when it may be."""
        if self.is_dead(entry.conn):
            return "closed by the server"
        return self.expired(entry, now)

    def learn_wait_timeout(self, wait_timeout: float) -> bool:
        """With ``recycle="auto"``: keep below this server's ``wait_timeout``
        too (the servers of a list may differ). True if recycle went down."""
        recycle = auto_recycle(wait_timeout)
        if self.auto and (self.recycle is None or recycle < self.recycle):
            self.recycle = recycle
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
