"""mysqlpool: a fair, bounded asyncio connection pool for MySQL and MariaDB."""

from ._config import PoolOptions
from ._dropin import disable, enable, is_enabled
from ._dsn import parse_dsn
from ._manager import PoolManager
from ._params import ConnectParams
from ._pool import Pool, create_pool
from ._stats import HostStats, PoolStats
from ._version import __version__
from .errors import (
    DriverNotInstalled,
    NoServerAvailable,
    PoolClosed,
    PoolError,
    PoolOverloaded,
    PoolTimeout,
)

__all__ = [
    "ConnectParams",
    "DriverNotInstalled",
    "HostStats",
    "NoServerAvailable",
    "Pool",
    "PoolClosed",
    "PoolError",
    "PoolManager",
    "PoolOptions",
    "PoolOverloaded",
    "PoolStats",
    "PoolTimeout",
    "__version__",
    "create_pool",
    "disable",
    "enable",
    "is_enabled",
    "parse_dsn",
]
