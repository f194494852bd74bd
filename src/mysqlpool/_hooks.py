"""The pool's user callbacks: ``init`` and the four event hooks.

Hooks are for tracing and metrics: they are called synchronously at the
moment of the event, and one that raises is logged and ignored, since a
failing tracer must not break the pool's bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._driver import InitCallback

__all__ = ["ConnectionHook", "DiscardHook", "Hooks", "check_init"]

logger = logging.getLogger("mysqlpool")

#: ``on_connect``, ``on_checkout``, ``on_checkin``: called with the connection.
ConnectionHook = Callable[[Any], None]
#: ``on_discard``: called with the connection and why it is being closed.
DiscardHook = Callable[[Any, str], None]


def check_init(init: InitCallback | None) -> InitCallback | None:
    """``init`` as given, once it is known to be callable (or None).

    Raises:
        ValueError: it is not callable.
    """
    if init is not None and not callable(init):
        raise ValueError(f"init must be an async callable taking the connection, got {init!r}")
    return init


class Hooks:
    """``on_connect``, ``on_checkout``, ``on_checkin`` and ``on_discard`` of one pool.

    Raises:
        ValueError: a hook that is not callable (named in the message).
    """

    __slots__ = ("_pool_name", "on_checkin", "on_checkout", "on_connect", "on_discard")

    def __init__(
        self,
        pool_name: str,
        on_connect: ConnectionHook | None = None,
        on_checkout: ConnectionHook | None = None,
        on_checkin: ConnectionHook | None = None,
        on_discard: DiscardHook | None = None,
    ) -> None:
        for hook_name, hook in (
            ("on_connect", on_connect),
            ("on_checkout", on_checkout),
            ("on_checkin", on_checkin),
            ("on_discard", on_discard),
        ):
            if hook is not None and not callable(hook):
                raise ValueError(f"{hook_name} must be a callable, got {hook!r}")
        self._pool_name = pool_name
        self.on_connect = on_connect
        self.on_checkout = on_checkout
        self.on_checkin = on_checkin
        self.on_discard = on_discard

    @property
    def per_use(self) -> bool:
        """Whether a checkout or a return calls a hook (``on_checkout``, ``on_checkin``)."""
        return self.on_checkout is not None or self.on_checkin is not None

    def connected(self, conn: Any) -> None:
        if self.on_connect is not None:
            self._call("on_connect", self.on_connect, conn)

    def checked_out(self, conn: Any) -> None:
        if self.on_checkout is not None:
            self._call("on_checkout", self.on_checkout, conn)

    def checked_in(self, conn: Any) -> None:
        if self.on_checkin is not None:
            self._call("on_checkin", self.on_checkin, conn)

    def discarded(self, conn: Any, reason: str) -> None:
        if self.on_discard is not None:
            self._call("on_discard", self.on_discard, conn, reason)

    def _call(self, hook_name: str, hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            logger.exception("pool %s: %s hook raised; ignored", self._pool_name, hook_name)
