"""The reset on return: a rollback, or COM_RESET_CONNECTION with the session
re-applied, before a returned connection is checked in again."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ._deadline import limited, return_limit
from ._driver import InitCallback
from ._entry import Entry
from ._params import ConnectParams

if TYPE_CHECKING:
    from ._state import PoolState

__all__ = ["Resetter"]

logger = logging.getLogger("mysqlpool")


class Resetter:
    """Resets connections as ``reset_on_return`` says; called by
    :meth:`PoolState.give_back` when a returned connection needs it."""

    __slots__ = ("_init", "_limit", "_params")

    def __init__(
        self, params: ConnectParams, init: InitCallback | None, timeout: float | None
    ) -> None:
        self._params = params  # what "reset" re-applies to the session
        self._init = init  # run again after a COM_RESET_CONNECTION, which wipes what it set
        # A reset that takes longer closes the connection: a stuck server
        # must not hold up its holder's ``async with`` exit, nor a slot.
        self._limit = return_limit(timeout)

    async def __call__(self, state: PoolState, entry: Entry) -> None:
        """Reset ``entry``'s connection, then check it in: back to the pool,
        or closed when the reset failed or was interrupted."""
        driver, conn = state.driver, entry.conn
        reason = None
        try:
            if state.reset_mode == "rollback":
                reset = driver.rollback(conn)
            else:
                reset = driver.reset_session(conn, self._params, self._init)
            await limited(reset, self._limit)
            entry.checkout_marker = driver.probe(conn)  # after the reset's statements
        except (asyncio.TimeoutError, TimeoutError):
            reason = "reset timed out"
            logger.info(
                "pool %s: discarded a connection whose reset took over %s s",
                state.name,
                self._limit,
            )
        except Exception as reset_error:
            reason = "reset failed"
            logger.info(
                "pool %s: discarded a connection whose reset failed: %s", state.name, reset_error
            )
        except BaseException:
            state.check_in(entry, "cancelled during reset")
            raise
        state.check_in(entry, reason)
