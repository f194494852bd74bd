"""A snapshot of a pool's counters."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["HostStats", "PoolStats"]


@dataclass(frozen=True)
class HostStats:
    """One server of a pool's host list.

    ``state`` is ``"up"`` or ``"down"`` (``down_reason`` says why: a failed
    connect, a lost connection, the wrong role, a Galera node not Synced);
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
    (acquires that raised PoolTimeout) and ``wait_time`` (seconds acquirers
    spent queued or opening a connection). ``hosts`` has one
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
    #: Per server, keyed ``"host:port"``, in the DSN's order.
    # Left out of the hash (a dict has none), so a snapshot stays hashable.
    hosts: dict[str, HostStats] = field(default_factory=dict, hash=False)
