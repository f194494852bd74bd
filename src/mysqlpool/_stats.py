"""A snapshot of a pool's counters."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["HostStats", "PoolStats", "imbalances"]


@dataclass(frozen=True)
class HostStats:
    """One server of a pool's host list.

    ``state`` is ``"unknown"`` until a connect to the host succeeds or
    marks it down (until then it is tried as if up), then ``"up"`` or ``"down"``
    (``down_reason`` says why: a failed connect, a lost connection, the
    wrong role, a Galera node not Synced);
    ``open``, ``idle`` and ``in_use`` count this pool's connections to it;
    ``failures`` counts the times it was marked down; ``role`` is
    ``"primary"`` or ``"replica"`` as last seen (None until a pool that
    checks roles has connected to it); ``retry_in`` is, for a host that is
    down, the seconds left of its backoff before it is tried again (None
    while it is up).
    """

    host: str
    port: int
    state: str
    open: int
    idle: int
    in_use: int
    failures: int
    role: str | None = None
    down_reason: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True)
class PoolStats:
    """What a pool holds now and what it has done since it was created.

    Gauges (now): ``open`` connections (``idle + in_use``), ``idle`` in the
    queue, ``in_use`` checked out or on their way back, ``opening`` slots
    reserved for a connection being opened, ``waiting`` acquirers queued.
    Counters (totals): ``opened``, ``closed``, ``recycled`` (closed for age:
    ``recycle`` or ``max_lifetime``), ``discarded`` (closed as broken or of
    unknown protocol state), ``acquires`` (successful), ``timeouts``
    (acquires that waited their whole timeout and raised PoolTimeout),
    ``wait_time`` (seconds acquirers spent queued or opening a connection)
    and ``overloaded`` (acquires refused at once with PoolOverloaded because
    ``max_waiting`` acquirers were already queued; not in ``timeouts``).
    ``hosts`` has one
    :class:`HostStats` per server of the DSN.
    """

    name: str
    pool_size: int
    max_overflow: int | None
    open: int
    idle: int
    in_use: int
    opening: int
    waiting: int
    opened: int
    closed: int
    recycled: int
    discarded: int
    acquires: int
    timeouts: int
    wait_time: float
    overloaded: int = 0
    #: Per server, keyed ``"host:port"``, in the DSN's order.
    # Left out of the hash (a dict has none), so a snapshot stays hashable.
    hosts: dict[str, HostStats] = field(default_factory=dict, hash=False)


def imbalances(stats: PoolStats, *, slots: int, closed: bool) -> list[str]:
    """What is inconsistent in a pool's snapshot, given its slot count (idle
    + in use + opening, never above ``pool_size + max_overflow``) and whether
    it is closed. An empty list when the books balance."""
    problems = []
    idle, in_use, opening, waiting = stats.idle, stats.in_use, stats.opening, stats.waiting
    limit = None if stats.max_overflow is None else stats.pool_size + stats.max_overflow
    if slots != idle + in_use + opening:
        problems.append(f"slots {slots} != idle {idle} + in_use {in_use} + opening {opening}")
    if stats.opened - stats.closed != idle + in_use:
        problems.append(
            f"opened {stats.opened} - closed {stats.closed} != idle {idle} + in_use {in_use}"
        )
    host_open = sum(host.open for host in stats.hosts.values())
    if host_open != idle + in_use:
        problems.append(f"open per host {host_open} != idle {idle} + in_use {in_use}")
    if limit is not None and slots > limit:
        problems.append(f"slots {slots} > max {limit}")
    if idle > stats.pool_size:
        problems.append(f"idle {idle} > pool_size {stats.pool_size}")
    if waiting and idle:
        problems.append(f"{waiting} waiting while {idle} idle")
    if waiting and limit is not None and slots < limit:
        problems.append(f"{waiting} waiting while a slot is free")
    if opening < 0:
        problems.append(f"opening {opening} < 0")
    if closed and idle:
        problems.append(f"closed with {idle} idle")
    return problems
