"""A snapshot of a pool's counters."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PoolStats"]


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
    spent queued or opening a connection).
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
