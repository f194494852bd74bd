"""A pool's options, checked once: :class:`PoolOptions`.

``Pool(...)`` takes them as keyword arguments, or from the DSN's query
string (``?pool_size=10&recycle=auto``), or both when they agree. Every
range check lives here, so a bad value gets the same message wherever it
came from, and the message names the option.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ._hosts import LOAD_BALANCE, TARGETS, LoadBalance, Target

__all__ = [
    "DEFAULT_PRE_PING_AFTER",
    "PoolOptions",
    "ResetMode",
    "check_seconds",
]

ResetMode = Literal["rollback", "reset"]

#: ``pre_ping=True`` pings a connection that has been idle this long (seconds).
DEFAULT_PRE_PING_AFTER = 1.0


@dataclass(frozen=True)
class PoolOptions:
    """Everything about a pool but its connection parameters and callbacks.

    ``Pool(...)`` takes each as a keyword argument or from the DSN's query
    string; ``pool.options`` shows them as the pool uses them (numbers as
    floats).

    Attributes:
        pool_size: idle connections kept in the queue (default 5).
        max_overflow: connections opened beyond ``pool_size`` under load and
            closed when they come back to a full queue (default 10); None means
            unbounded.
        timeout: seconds ``acquire()`` waits for a connection when
            ``pool_size + max_overflow`` are in use (default 30); None waits
            forever. Opening and pinging count against the same deadline.
        recycle: a connection whose activity stamp (set at open and at each
            checkout) is this many seconds old is closed instead of reused;
            ``"auto"`` (default) derives it from the server's ``wait_timeout``;
            None disables it.
        max_lifetime: seconds after opening when a connection is retired,
            however it is used (default None: never).
        pre_ping: True pings a connection idle for more than a second before
            handing it out; a number sets that idle threshold in seconds (0:
            always). A dead connection is replaced; the caller never sees it.
        reset_on_return: ``"rollback"`` (default) rolls back when a
            transaction may be open, ``"reset"`` sends COM_RESET_CONNECTION and
            re-applies the configured session, None does nothing.
        min_size: connections opened by ``open()`` and kept open by the reaper
            (default 0); at most ``pool_size``.
        reaper_interval: seconds between reaper passes; None derives it from
            ``recycle`` and ``max_lifetime``.
        leak_timeout: seconds after which a connection still checked out is
            logged as a likely leak, with the stack of its ``acquire()``.
        lifo: hand out the most recently returned connection first (default:
            the least recently returned, which spreads use evenly).
        name: how logs, errors and stats name the pool (default: the DSN with
            its password redacted).
        kill_query_on_cancel: when a holder is cancelled (or times out) while
            waiting for a statement's reply, send ``KILL QUERY`` for it over a
            short-lived side connection, so the server stops the work nobody
            will read (default True).
        load_balance: with several hosts in the DSN, where new connections
            go: ``"failover"`` (default: the first host that is up, in
            order), ``"round_robin"``, ``"random"`` or ``"least_connections"``
            (spread over the hosts that are up, within one connection of
            even). A host that fails is marked down with exponential backoff,
            its idle connections are closed, and it is tried again when the
            backoff runs out; connections that come back to a host that is
            down, or where the policy no longer wants them (a better host is
            up again), are closed instead of kept.
        target: ``"any"`` (default), ``"primary"`` (only ``@@read_only=0``),
            ``"replica"`` (only ``@@read_only=1``) or ``"prefer_replica"`` (a
            replica when one is up, else the primary); checked on every new
            connection. A Galera node that is not ready and Synced counts as
            down whatever the target.
        max_waiting: how many acquirers may queue for a connection at once
            (default None: no limit). With that many already waiting,
            ``acquire()`` raises :class:`~mysqlpool.PoolOverloaded` at once
            instead of queueing behind work that will likely time out; 0
            means never wait. A waiter that leaves (served, timed out,
            cancelled) makes room at once.

    Raises:
        ValueError: a value out of range or of the wrong type, naming the option.
    """

    pool_size: int = 5
    max_overflow: int | None = 10
    timeout: float | None = 30.0
    recycle: float | Literal["auto"] | None = "auto"
    max_lifetime: float | None = None
    pre_ping: bool | float = False
    reset_on_return: ResetMode | None = "rollback"
    min_size: int = 0
    reaper_interval: float | None = None
    leak_timeout: float | None = None
    lifo: bool = False
    name: str | None = None
    kill_query_on_cancel: bool = True
    load_balance: LoadBalance = "failover"
    target: Target = "any"
    max_waiting: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _check_int("pool_size", self.pool_size, minimum=1)
        if self.max_overflow is not None:
            _check_int("max_overflow", self.max_overflow, minimum=0)
        set_(self, "timeout", check_seconds("timeout", self.timeout, allow_zero=True))
        if self.recycle != "auto":
            set_(self, "recycle", check_seconds("recycle", self.recycle))
        set_(self, "max_lifetime", check_seconds("max_lifetime", self.max_lifetime))
        if not isinstance(self.pre_ping, bool) and self.pre_ping is not None:
            set_(self, "pre_ping", check_seconds("pre_ping", self.pre_ping, allow_zero=True))
        elif self.pre_ping is None:
            set_(self, "pre_ping", False)
        if self.reset_on_return not in ("rollback", "reset", None):
            raise ValueError(
                "reset_on_return must be 'rollback', 'reset' or None, "
                f"got {self.reset_on_return!r}"
            )
        _check_int("min_size", self.min_size, minimum=0)
        if self.min_size > self.pool_size:
            raise ValueError(
                f"min_size ({self.min_size}) must not exceed pool_size ({self.pool_size})"
            )
        set_(self, "reaper_interval", check_seconds("reaper_interval", self.reaper_interval))
        set_(self, "leak_timeout", check_seconds("leak_timeout", self.leak_timeout))
        set_(self, "lifo", bool(self.lifo))
        set_(self, "kill_query_on_cancel", bool(self.kill_query_on_cancel))
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"name must be a str or None, got {self.name!r}")
        if self.max_waiting is not None:
            _check_int("max_waiting", self.max_waiting, minimum=0, or_none=True)
        if self.load_balance not in LOAD_BALANCE:
            raise ValueError(
                f"load_balance must be one of {', '.join(map(repr, LOAD_BALANCE))}, "
                f"got {self.load_balance!r}"
            )
        if self.target not in TARGETS:
            raise ValueError(
                f"target must be one of {', '.join(map(repr, TARGETS))}, got {self.target!r}"
            )

    @property
    def max_size(self) -> int | None:
        """``pool_size + max_overflow``: the most connections open at once (None: no limit)."""
        return None if self.max_overflow is None else self.pool_size + self.max_overflow

    @property
    def pre_ping_after(self) -> float | None:
        """Idle seconds after which a connection is pinged before it is handed
        out; None when ``pre_ping`` is off."""
        if self.pre_ping is True:
            return DEFAULT_PRE_PING_AFTER
        if self.pre_ping is False:
            return None
        return float(self.pre_ping)

    def replace(self, **changes: Any) -> PoolOptions:
        """A copy with ``changes`` applied (checked like the original)."""
        return dataclasses.replace(self, **changes)


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float | None:
    """``value`` as a float number of seconds (None stays None).

    Raises:
        ValueError: not a number, negative, NaN, or 0 where that is not allowed.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds or None, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds or None, got {value!r}")
    return float(value)


def _check_int(name: str, value: object, *, minimum: int, or_none: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or None" if or_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{none}, got {value!r}")
