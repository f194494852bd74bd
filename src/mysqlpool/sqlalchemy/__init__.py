"""SQLAlchemy's asyncio engine on a mysqlpool pool (``pip install mysqlpool[sqlalchemy]``).

```python
from mysqlpool.sqlalchemy import create_async_engine
engine = create_async_engine("mysql+aiomysql://app:pw@db1:3306/shop", pool_size=10)
engine.pool.mysqlpool.stats()
```

``import mysqlpool`` never imports SQLAlchemy; this module does.
"""

from ._engine import create_async_engine
from ._pool import MysqlpoolPool

__all__ = ["MysqlpoolPool", "create_async_engine"]
