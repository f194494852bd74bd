"""The test environment itself: ``mysql_dsn`` reaches a real MySQL/MariaDB server."""

from __future__ import annotations

from typing import Any

import aiomysql


async def _query_one(connect_kwargs: dict[str, Any], sql: str) -> Any:
    conn = await aiomysql.connect(**{**connect_kwargs, "connect_timeout": 5})
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            row = await cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    return row[0]


async def test_server_answers_select_1(mysql_connect_kwargs: dict[str, Any]) -> None:
    assert await _query_one(mysql_connect_kwargs, "SELECT 1") == 1


async def test_server_is_mariadb_or_mysql(mysql_connect_kwargs: dict[str, Any]) -> None:
    version = await _query_one(mysql_connect_kwargs, "SELECT VERSION()")
    assert isinstance(version, str)
    # MariaDB says e.g. "10.11.6-MariaDB-0+deb12u1"; MySQL says e.g. "8.0.36".
    major = int(version.split(".", 1)[0])
    assert "mariadb" in version.lower() or major >= 5, version
