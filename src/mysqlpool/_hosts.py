"""Several servers behind one pool: their health, and where a new connection goes.

A :class:`HostSet` knows, for each server of the DSN, whether it is up, how
many of the pool's connections it holds, and what role it was last seen in.
It only decides; the pool opens and closes connections. Every method is
synchronous, so the pool can call it between two awaits without a lock.

Health: a host whose connect fails, whose connection reports a loss, whose
role doesn't match the pool's ``target``, or which is a Galera node not ready
and Synced, is marked down for an exponential backoff with jitter. While it
is down it gets no new connections unless every other host is down too (then
it is tried last, in order of its retry time, so that a pool whose every
server is away still fails fast with the driver's error). Once its backoff
has run out it is tried again, and the first successful connection marks it
up.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from typing import Literal

from ._backoff import backoff_delay
from ._params import ConnectParams
from ._server_state import ServerState
from ._stats import HostStats

__all__ = ["LOAD_BALANCE", "TARGETS", "Host", "HostSet", "LoadBalance", "Target"]

LoadBalance = Literal["failover", "round_robin", "random", "least_connections"]
Target = Literal["any", "primary", "replica", "prefer_replica"]
LOAD_BALANCE: tuple[LoadBalance, ...] = ("failover", "round_robin", "random", "least_connections")
TARGETS: tuple[Target, ...] = ("any", "primary", "replica", "prefer_replica")

#: A host that is down is tried again at least this often (seconds, before
#: jitter): a refused connect is cheap, and a server back from a restart
#: should not wait out a long backoff it earned while it was away.
HOST_BACKOFF_CAP = 5.0

# prefer_replica's order of roles; None: not connected to yet.
_PREFERENCE = ("replica", None, "primary")


class Host:
    """One server of the pool's host list and what the pool knows about it."""

    __slots__ = (
        "address",
        "contacted",
        "down_reason",
        "failures",
        "failures_total",
        "label",
        "open",
        "opening",
        "params",
        "position",
        "retry_at",
        "role",
        "up",
        "wait_timeout_read",
    )

    def __init__(self, params: ConnectParams, position: int) -> None:
        self.address = (params.host, params.port)
        self.label = f"{params.host}:{params.port}"
        self.params = params  # the pool's parameters with this one server
        self.position = position  # in the DSN: the failover order
        self.up = True  # until shown otherwise
        self.contacted = False  # a connect to it has succeeded or marked it down
        self.down_reason: str | None = None
        self.failures = 0  # in a row, for the backoff
        self.failures_total = 0
        self.retry_at = 0.0  # monotonic: no new connection before this while down
        self.open = 0  # the pool's connections to it, open now
        self.opening = 0  # and being opened
        self.role: str | None = None  # "primary" | "replica", once seen
        self.wait_timeout_read = False  # recycle="auto" has seen this server's

    @property
    def state(self) -> str:
        """``"unknown"`` until a connect to it succeeds or marks it down, then
        ``"up"`` or ``"down"``.

        Not contacted yet, a host is still tried as if up: "unknown" is only
        what the stats say, so that a dashboard doesn't show a server the pool
        never reached as healthy.
        """
        if not self.contacted:
            return "unknown"
        return "up" if self.up else "down"

    def __repr__(self) -> str:
        state = self.state if self.up else f"down ({self.down_reason})"
        return f"<Host {self.label} {state} open={self.open}>"


class HostSet:
    """The hosts of one pool, their health, and the load-balancing policy."""

    def __init__(self, params: ConnectParams, load_balance: LoadBalance, target: Target) -> None:
        self.hosts = [
            Host(params.for_host(host, port), position)
            for position, (host, port) in enumerate(params.hosts)
        ]
        self.load_balance = load_balance
        self.target = target
        self._rotation = itertools.count()

    # ------------------------------------------------------------ choosing

    def candidates(self, now: float) -> list[Host]:
        """Hosts to try for one new connection, best first.

        The hosts that are up (or whose backoff has run out) in the policy's
        order, then the others, soonest retry first.
        """
        usable = [host for host in self.hosts if host.up or host.retry_at <= now]
        resting = sorted(
            (host for host in self.hosts if not host.up and host.retry_at > now),
            key=lambda host: host.retry_at,
        )
        return self._ordered(usable) + resting

    def _ordered(self, hosts: list[Host]) -> list[Host]:
        if self.target == "prefer_replica":
            # Known replicas, then hosts of unknown role, then primaries; the
            # policy spreads within each tier.
            tiers = [[host for host in hosts if host.role == role] for role in _PREFERENCE]
            return [host for tier in tiers for host in self._spread(tier)]
        return self._spread(hosts)

    def _spread(self, hosts: list[Host]) -> list[Host]:
        if len(hosts) < 2 or self.load_balance == "failover":
            return hosts
        policy = self.load_balance
        if policy == "round_robin":
            start = next(self._rotation) % len(hosts)
            hosts = hosts[start:] + hosts[:start]
        elif policy == "least_connections":
            hosts = sorted(hosts, key=lambda host: (_load(host), host.position))
        else:
            hosts = random.sample(hosts, len(hosts))
        # The policy picks among the least loaded hosts (the sort is stable):
        # connections stay spread within one of even, and a host back from a
        # failure catches up first (the same rule as preferred()).
        least = min(_load(host) for host in hosts)
        return sorted(hosts, key=lambda host: _load(host) > least)

    def refusal(self, state: ServerState) -> str | None:
        """Why a server in ``state`` can't serve this pool, or None."""
        unready = state.why_not_ready()
        if unready is not None:
            return unready
        if self.target == "primary" and state.read_only:
            return "read-only (a replica) and target is 'primary'"
        if self.target == "replica" and not state.read_only:
            return "writable (a primary) and target is 'replica'"
        return None

    def replica_may_be_up(self, now: float) -> bool:
        """For prefer_replica: could some host still turn out to be a replica?"""
        return any(
            host.role != "primary" and (host.up or host.retry_at <= now) for host in self.hosts
        )

    # -------------------------------------------------------------- health

    def mark_up(self, host: Host, state: ServerState | None) -> bool:
        """A connection to ``host`` opened and passed its checks. True if it was down."""
        if state is not None:
            host.role = state.role
        was_down = not host.up
        host.contacted = True
        host.up = True
        host.down_reason = None
        host.failures = 0
        return was_down

    def mark_down(self, host: Host, reason: str, now: float, *, answering: bool = False) -> bool:
        """``host`` failed: back off before trying it again. True if it was up.

        A failure while the host is still resting (a last-resort attempt, or
        several connects that were already under way) doesn't lengthen its
        backoff: only a retry that fails does. ``answering``: the server is
        alive but can't serve yet (a Galera node joining or desynced, or
        rejecting queries): its backoff restarts from the first step, so it
        is back within a second of being ready, however long it was away.
        """
        was_up = host.up
        host.contacted = True
        host.down_reason = reason
        if was_up or host.retry_at <= now:
            host.up = False
            host.failures = 1 if answering else host.failures + 1
            host.failures_total += 1
            host.retry_at = now + backoff_delay(host.failures, HOST_BACKOFF_CAP)
        return was_up

    def next_retry(self) -> float | None:
        """When the first host that is down may be tried again (monotonic)."""
        times = [host.retry_at for host in self.hosts if not host.up]
        return min(times) if times else None

    def due(self, now: float) -> list[Host]:
        """Hosts that are down and whose backoff has run out."""
        return [host for host in self.hosts if not host.up and host.retry_at <= now]

    # ----------------------------------------------------------- placement

    def preferred(self, host: Host) -> bool:
        """Whether a healthy connection to ``host`` sits where the policy wants it.

        False when the host is down, or a better one is up: an earlier host
        for ``failover``, a replica for ``prefer_replica``, a host with at
        least two fewer connections for the spreading policies (moving one
        connection then evens them; candidates() never sends it back).
        """
        if not host.up:
            return False
        up = [other for other in self.hosts if other.up]
        if self.target == "prefer_replica":
            replicas = [other for other in up if other.role == "replica"]
            if replicas:
                if host.role != "replica":
                    return False
                up = replicas  # the spread is among the replicas only
        if self.load_balance == "failover":
            return not any(other.position < host.position for other in up)
        return _load(host) < min(_load(other) for other in up) + 2

    def stats(
        self, idle: Iterable[Host], in_use: Iterable[Host], now: float
    ) -> dict[str, HostStats]:
        """Each host's :class:`HostStats`, given the hosts of the idle and
        the checked-out connections."""
        idle_counts = _count(idle)
        in_use_counts = _count(in_use)
        return {
            host.label: HostStats(
                host=host.address[0],
                port=host.address[1],
                state=host.state,
                open=host.open,
                idle=idle_counts.get(host.label, 0),
                in_use=in_use_counts.get(host.label, 0),
                failures=host.failures_total,
                role=host.role,
                down_reason=host.down_reason,
                retry_in=None if host.up else max(0.0, host.retry_at - now),
            )
            for host in self.hosts
        }


def _load(host: Host) -> int:
    return host.open + host.opening


def _count(hosts: Iterable[Host]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for host in hosts:
        counts[host.label] = counts.get(host.label, 0) + 1
    return counts
