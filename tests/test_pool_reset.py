"""A reset restores what the connection was opened with (issue 13).

Whatever set the database and the character set when the connection was
opened (the DSN, keywords, or an option file through ``read_default_file``)
is what ``reset_on_return="reset"`` puts back after a holder changed them.
"""

from __future__ import annotations

from typing import Any

import drivers
from conftest import PoolFactory, scalar

SESSION = "SELECT DATABASE(), @@character_set_client, @@character_set_results"


async def session_of(conn: Any) -> tuple[Any, ...]:
    async with conn.cursor() as cur:
        await cur.execute(SESSION)
        row = await cur.fetchone()
    return (*row, conn.charset)


@drivers.only_on("aiomysql", "option files (read_default_file) and conn.set_charset()")
async def test_a_reset_restores_the_database_and_charset_of_the_option_file(
    make_pool: PoolFactory, option_file: str, databases: tuple[str, str]
) -> None:
    pool = await make_pool(
        pool_size=1, max_overflow=0, reset_on_return="reset", read_default_file=option_file
    )
    async with pool.acquire() as conn:
        opened = await session_of(conn)
        await conn.select_db(databases[1])
        await conn.set_charset("utf8mb4")
        assert await session_of(conn) == (databases[1], "utf8mb4", "utf8mb4", "utf8mb4")
    async with pool.acquire() as conn:
        assert await session_of(conn) == opened
    assert opened == (databases[0], "latin1", "latin1", "latin1")
    assert pool.stats().opened == 1


async def test_a_connection_opened_without_a_database_never_comes_back_with_one(
    make_pool: PoolFactory, mysql_dsn: str, databases: tuple[str, str]
) -> None:
    without_db = mysql_dsn.partition("?")[0].rsplit("/", 1)[0] + "/"
    pool = await make_pool(without_db, pool_size=1, max_overflow=0, reset_on_return="reset")
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT DATABASE()") is None
    async with pool.acquire() as conn:  # reset, and reused
        assert await scalar(conn, "SELECT DATABASE()") is None
        await scalar(conn, f"USE `{databases[0]}`")
    async with pool.acquire() as conn:  # that one could not be reset: a new one
        assert await scalar(conn, "SELECT DATABASE()") is None
    stats = pool.stats()
    assert (stats.opened, stats.discarded) == (2, 1)
