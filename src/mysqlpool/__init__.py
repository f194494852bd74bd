"""mysqlpool: a fair, bounded asyncio connection pool for MySQL and MariaDB."""

from ._dsn import ConnectParams, parse_dsn
from ._manager import PoolManager
from ._pool import Pool, create_pool
from ._stats import PoolStats
from .errors import PoolClosed, PoolError, PoolTimeout

__all__ = [
    "ConnectParams",
    "Pool",
    "PoolClosed",
    "PoolError",
    "PoolManager",
    "PoolStats",
    "PoolTimeout",
    "create_pool",
    "parse_dsn",
]

__version__ = "0.1.0"
