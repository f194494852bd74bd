"""Host health: marking a pool's servers down and up, and what follows.

:class:`~mysqlpool._hosts.HostSet` keeps the health and decides placement;
this module is where the pool reports what it saw (a connect that failed, a
returned connection that was lost, a server in the wrong role) and where
the consequences start: a log line, the host's idle connections closed (by
the pool, through ``on_down``), the prober woken. Synchronous, like every
state change of the pool.

With a single host there is nowhere else to go: a failure is only recorded
for the stats, and the pool fails and recovers as it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._clock import Clock
from ._driver import Driver
from ._hosts import Host, HostSet
from ._server_state import ER_NODE_NOT_READY, ServerState

__all__ = ["HostHealth", "brief"]

logger = logging.getLogger("mysqlpool")


def brief(exc: BaseException) -> str:
    """An error in a few words for a host's down reason (drivers' messages
    never contain the password)."""
    text = " ".join(str(arg) for arg in exc.args) if exc.args else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HostHealth:
    """Reports about a pool's hosts, turned into their health.

    Args:
        on_down: called with a host that was up and is now down (the pool
            closes its idle connections there).
        wake_prober: called after any failure (the prober retries hosts
            that are down once their backoff ends).
    """

    __slots__ = ("_clock", "_driver", "_on_down", "_pool_name", "_wake_prober", "hostset", "multi")

    def __init__(
        self,
        hostset: HostSet,
        clock: Clock,
        driver: Driver,
        pool_name: str,
        *,
        on_down: Callable[[Host], None],
        wake_prober: Callable[[], None],
    ) -> None:
        self.hostset = hostset
        self.multi = len(hostset.hosts) > 1
        self._clock = clock
        self._driver = driver
        self._pool_name = pool_name
        self._on_down = on_down
        self._wake_prober = wake_prober

    def failed(self, host: Host, reason: str, *, answering: bool = False) -> None:
        """``host`` failed. ``answering``: it answered but can't serve yet (a
        Galera node catching up): retried soon, without a growing backoff."""
        if not self.multi:
            return
        now = self._clock.now()
        if self.hostset.mark_down(host, reason, now, answering=answering):
            logger.warning(
                "pool %s: host %s is down (%s); trying again in %.1f s",
                self._pool_name,
                host.label,
                reason,
                max(0.0, host.retry_at - now),
            )
            self._on_down(host)
        self._wake_prober()

    def answered(self, host: Host, state: ServerState | None) -> None:
        """A connection to ``host`` opened and passed its checks."""
        if self.hostset.mark_up(host, state):
            logger.warning("pool %s: host %s is up again", self._pool_name, host.label)

    def after_use(self, host: Host, conn: Any, error: BaseException | None) -> None:
        """A connection came back from ``host``: was it lost, or did its
        Galera node say it isn't ready?"""
        if not self.multi:
            return
        driver = self._driver
        if error is not None and driver.error_code(error) == ER_NODE_NOT_READY:
            self.failed(host, brief(error), answering=True)
        elif error is not None and driver.is_connection_lost(error):
            self.failed(host, brief(error))
        elif driver.is_dead(conn):
            self.failed(host, "connection lost")

    def turn_away(self, host: Host, conn: Any, state: ServerState) -> str | None:
        """Why a new connection's server can't serve this pool now (wrong
        role, Galera node not ready), having closed the connection and marked
        the host down; or None when it can."""
        refusal = self.hostset.refusal(state)
        if refusal is None:
            return None
        self._driver.close(conn, graceful=True)
        host.role = state.role
        if self.multi:
            self.failed(host, refusal, answering=not state.ready)
        else:  # nowhere else to go: only the stats say so
            self.hostset.mark_down(host, refusal, self._clock.now())
        return refusal
