"""What a server is right now: primary or replica, and for a Galera node,
whether it may serve clients.

Read once per new connection by pools that spread over several hosts or ask
for a role. Only ``SHOW`` statements are used: a Galera node that is not
ready answers every other statement with error 1047, but still answers these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._driver import Driver

__all__ = ["ER_NODE_NOT_READY", "ServerState", "read_server_state"]

#: MariaDB/Galera: "WSREP has not yet prepared node for application use".
ER_NODE_NOT_READY = 1047

# wsrep_local_state 4 is Synced; 1 joining, 2 donor/desynced, 3 joined.
_SYNCED = "4"


@dataclass(frozen=True)
class ServerState:
    """``@@read_only`` and, on a Galera node, its readiness."""

    read_only: bool
    #: None off Galera, else ``wsrep_local_state_comment`` (``Synced``, ``Donor/Desynced``...).
    galera_state: str | None = None
    #: False for a Galera node that is not ``wsrep_ready=ON`` and Synced.
    ready: bool = True

    @property
    def role(self) -> str:
        """``"replica"`` for a read-only server, else ``"primary"``."""
        return "replica" if self.read_only else "primary"

    def why_not_ready(self) -> str | None:
        if self.ready:
            return None
        return f"Galera node not ready ({self.galera_state or 'unknown state'})"


async def read_server_state(driver: Driver, conn: Any) -> ServerState:
    """Ask the server for its role and Galera state (one round trip, two on Galera)."""
    variables = await driver.show_values(
        conn,
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
        "('read_only', 'wsrep_on', 'wsrep_reject_queries')",
    )
    read_only = variables.get("read_only", "OFF").upper() in ("ON", "1")
    if variables.get("wsrep_on", "OFF").upper() not in ("ON", "1"):
        return ServerState(read_only)
    status = await driver.show_values(
        conn,
        "SHOW GLOBAL STATUS WHERE Variable_name IN "
        "('wsrep_ready', 'wsrep_local_state', 'wsrep_local_state_comment')",
    )
    comment = status.get("wsrep_local_state_comment", "unknown")
    if variables.get("wsrep_reject_queries", "NONE").upper() != "NONE":
        # An operator took the node out of service: it answers 1047 to queries.
        return ServerState(read_only, f"{comment}, rejecting queries", ready=False)
    ready = status.get("wsrep_ready", "OFF").upper() == "ON" and (
        status.get("wsrep_local_state") == _SYNCED
    )
    return ServerState(read_only, comment, ready)
