"""The connector: the pool's one way to open a connection.

It opens on one host, or tries a host list in the policy's order under one
deadline; on each new connection it learns the server's ``wait_timeout``
(``recycle="auto"``) and, where roles matter, reads the server's state and
turns away one that can't serve. It reports every outcome to the hosts'
health and returns a connection; it never touches the pool's counts (the
caller reserved the slot and gives it back on failure).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ._aging import Aging
from ._clock import Clock
from ._deadline import DeadlineExceeded, bounded, within
from ._driver import Driver, InitCallback
from ._health import HostHealth, brief
from ._hosts import Host
from ._server_state import ServerState, read_server_state
from .errors import no_server_available_for

__all__ = ["DEFAULT_HOST_CONNECT_TIMEOUT", "Connector"]

logger = logging.getLogger("mysqlpool")

#: With several hosts, a connect that gets no answer in this many seconds
#: (``connect_timeout`` when it is set) moves on to the next host.
DEFAULT_HOST_CONNECT_TIMEOUT = 10.0

_OPENING = "opening a connection"


class Connector:
    """Opens connections for one pool.

    Args:
        check_state: read ``@@read_only`` (and Galera's state) on every new
            connection: with several hosts, or a ``target`` other than "any".
        on_recycle_change: called when ``recycle="auto"`` went down (the
            reaper's period depends on it).
    """

    __slots__ = (
        "_aging",
        "_clock",
        "_driver",
        "_health",
        "_host_limit",
        "_init",
        "_no_server",
        "_on_recycle_change",
        "_pool_name",
        "check_state",
    )

    def __init__(
        self,
        driver: Driver,
        health: HostHealth,
        aging: Aging,
        clock: Clock,
        init: InitCallback | None,
        *,
        check_state: bool,
        connect_timeout: float | None,
        pool_name: str,
        on_recycle_change: Callable[[], None],
    ) -> None:
        self._driver = driver
        self._health = health
        self._aging = aging
        self._clock = clock
        self._init = init
        self.check_state = check_state
        self._host_limit = connect_timeout or DEFAULT_HOST_CONNECT_TIMEOUT
        self._pool_name = pool_name
        self._on_recycle_change = on_recycle_change
        # Also the driver's OperationalError, whichever the driver.
        self._no_server = no_server_available_for(driver.OperationalError)

    async def connect(self, deadline: float | None = None) -> tuple[Any, Host]:
        """A new connection and its host, within ``deadline`` (on the pool's clock).

        With several hosts, tries them in the policy's order (see
        :meth:`HostSet.candidates`), marking each that fails down; a host
        that doesn't answer gets at most half the time left while others
        remain to be tried.

        Raises:
            DeadlineExceeded: the deadline passed.
            NoServerAvailable: no host could be used (each named, with why).
            The driver's error, from a single host.
        """
        health = self._health
        if not health.multi:
            host = health.hostset.hosts[0]
            conn, state = await bounded(
                self.open_on(host), deadline, self._clock, _OPENING, self._close_opened
            )
            if state is not None:
                refusal = health.turn_away(host, conn, state)
                if refusal is not None:
                    raise self._no_server(f"pool {self._pool_name}: {host.label}: {refusal}")
            health.answered(host, state)  # also ends the host's "unknown" state
            return conn, host
        return await self._connect_any(deadline)

    async def _connect_any(self, deadline: float | None) -> tuple[Any, Host]:
        health, clock = self._health, self._clock
        hostset = health.hostset
        tried: set[Host] = set()
        errors: list[str] = []
        last_error: BaseException | None = None
        fallback: tuple[Any, Host] | None = None  # prefer_replica: a primary, if no replica
        try:
            while True:
                # Asked again after each failure: other acquires may have
                # changed the loads (and the health) since.
                candidates = [
                    host
                    for host in hostset.candidates(clock.now())
                    if host not in tried and not (fallback is not None and host.role == "primary")
                ]
                if not candidates:
                    break
                host = candidates[0]
                tried.add(host)
                others_left = len(candidates) > 1
                limit = self._attempt_limit(deadline, others_left)
                if limit is not None and limit <= 0:
                    raise DeadlineExceeded(_OPENING)
                host.opening += 1
                try:
                    conn, state = await within(self.open_on(host), limit, self._close_opened)
                except (asyncio.TimeoutError, TimeoutError):
                    health.failed(host, "connect timed out")
                    if deadline is not None and clock.now() >= deadline:
                        raise DeadlineExceeded(_OPENING) from None
                    errors.append(f"{host.label}: connect timed out")
                    continue
                except Exception as exc:
                    health.failed(host, f"connect failed: {brief(exc)}")
                    errors.append(f"{host.label}: {brief(exc)}")
                    last_error = exc
                    continue
                finally:
                    host.opening -= 1
                assert state is not None
                refusal = health.turn_away(host, conn, state)
                if refusal is not None:
                    errors.append(f"{host.label}: {refusal}")
                    continue
                if (
                    hostset.target == "prefer_replica"
                    and state.role == "primary"
                    and fallback is None
                    and others_left
                    and hostset.replica_may_be_up(clock.now())
                ):
                    host.role = state.role
                    fallback = (conn, host)  # kept while the others are asked
                    continue
                health.answered(host, state)
                if fallback is not None:
                    self._driver.close(fallback[0], graceful=True)
                    fallback = None
                return conn, host
        except BaseException:
            if fallback is not None:
                self._driver.close(fallback[0], graceful=True)
            raise
        if fallback is not None:
            conn, host = fallback
            health.answered(host, None)
            return conn, host
        raise self._no_server(
            f"pool {self._pool_name}: no server could be used: " + "; ".join(errors)
        ) from last_error

    def _attempt_limit(self, deadline: float | None, others_left: bool) -> float | None:
        """How long one host may take to connect: never all the time left
        while another host could still answer."""
        remaining = None if deadline is None else deadline - self._clock.now()
        if not others_left:
            return remaining
        cap = self._host_limit
        return cap if remaining is None else min(cap, remaining / 2)

    def _close_opened(self, opened: tuple[Any, ServerState | None]) -> None:
        """Close a connection that opened as its acquire was cancelled or timed out."""
        self._driver.close(opened[0], graceful=False)

    async def open_on(self, host: Host) -> tuple[Any, ServerState | None]:
        """Open one connection to ``host``; its first one also learns the
        server's ``wait_timeout`` for ``recycle="auto"``; where roles matter,
        read its state."""
        driver, aging = self._driver, self._aging
        conn = await driver.connect(host.params, self._init)
        try:
            if aging.auto and not host.wait_timeout_read:
                wait_timeout = await driver.read_wait_timeout(conn)
                host.wait_timeout_read = True
                if aging.learn_wait_timeout(wait_timeout):
                    self._on_recycle_change()
                    logger.debug(
                        "pool %s: %s has wait_timeout %s s; recycle set to %s s",
                        self._pool_name,
                        host.label,
                        wait_timeout,
                        aging.recycle,
                    )
            state = await read_server_state(driver, conn) if self.check_state else None
        except BaseException:
            driver.close(conn, graceful=False)
            raise
        return conn, state

    async def probe(self, host: Host) -> Any:
        """A connection to a host that is down and due for a retry, or None.

        The outcome goes to the host's health: a failure lengthens its
        backoff, a success marks it up.
        """
        health = self._health
        host.opening += 1
        try:
            conn, state = await within(self.open_on(host), self._host_limit, self._close_opened)
        except Exception as exc:
            health.failed(host, f"connect failed: {brief(exc)}")
            return None
        finally:
            host.opening -= 1
        assert state is not None
        if health.turn_away(host, conn, state) is not None:
            return None
        health.answered(host, state)
        return conn
