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
from ._options import POOL_OPTION_DEFAULTS

__all__ = [
    "DEFAULT_PRE_PING_AFTER",
    "PoolOptions",
    "ResetMode",
    "check_seconds",
    "merge_dsn_options",
]

ResetMode = Literal["rollback", "reset"]

#: ``pre_ping=True`` pings a connection that has been idle this long (seconds).
DEFAULT_PRE_PING_AFTER = 1.0


@dataclass(frozen=True)
class PoolOptions:
    """Everything about a pool but its connection parameters and callbacks.

    ``pool.options`` shows them as the pool uses them (numbers as floats).
    See :class:`~mysqlpool.Pool` for what each one means.

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


def merge_dsn_options(given: dict[str, Any], from_dsn: dict[str, Any]) -> dict[str, Any]:
    """Pool options from the DSN replace defaults; one set both ways must agree.

    Raises:
        ValueError: an option given both ways, with different values.
    """
    merged = dict(given)
    for option, value in from_dsn.items():
        argument = given[option]
        if argument != POOL_OPTION_DEFAULTS[option] and argument != value:
            raise ValueError(
                f"{option} is given both in the DSN ({value!r}) and as an argument ({argument!r})"
            )
        merged[option] = value
    return merged


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


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
