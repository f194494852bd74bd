"""What the pool runs on a connection is invisible to its holder (issue 13).

The pool runs statements of its own: ``SELECT @@SESSION.wait_timeout``
(``recycle="auto"``), the server's role where roles matter, pings
(``pre_ping``), the reset or rollback on return. None of them may show in
what the holder reads of its connection's last statement: ``insert_id()``,
``affected_rows()``, warnings. A reset leaves them as a new connection's.
"""

from __future__ import annotations

from typing import Any

from conftest import PoolFactory, scalar


async def last_statement(conn: Any) -> tuple[Any, Any, Any]:
    """What a holder reads of its connection's last statement, before running any."""
    insert_id, affected = conn.insert_id(), conn.affected_rows()
    async with conn.cursor() as cur:
        await cur.execute("SHOW WARNINGS")
        warnings = await cur.fetchall()
    return insert_id, affected, warnings


FRESH = (0, 0, ())


async def test_a_new_connection_shows_no_statement_of_the_pool(make_pool: PoolFactory) -> None:
    # recycle="auto" reads wait_timeout; target="primary" reads the server's role.
    pool = await make_pool(recycle="auto", target="primary", pre_ping=0.0)
    async with pool.acquire() as conn:
        assert await last_statement(conn) == FRESH


async def test_a_reset_leaves_the_last_statement_as_a_new_connections(
    make_pool: PoolFactory,
) -> None:
    for mode in ("reset", "rollback"):
        pool = await make_pool(pool_size=1, max_overflow=0, reset_on_return=mode, autocommit=False)
        async with pool.acquire() as conn:
            first = conn.thread_id()
            await scalar(conn, "CREATE TEMPORARY TABLE t_trace (a INT AUTO_INCREMENT PRIMARY KEY)")
            await scalar(conn, "INSERT INTO t_trace VALUES (NULL), (NULL)")
            assert (conn.insert_id(), conn.affected_rows()) == (1, 2)
        async with pool.acquire() as conn:
            assert conn.thread_id() == first
            assert await last_statement(conn) == FRESH, mode


async def test_a_ping_leaves_the_last_statement_alone(make_pool: PoolFactory) -> None:
    # Autocommit on, no transaction: the return runs nothing, the next
    # checkout pings; the ping must leave the connection as it came back.
    pool = await make_pool(pool_size=1, max_overflow=0, pre_ping=0.0, autocommit=True)
    async with pool.acquire() as conn:
        await scalar(conn, "CREATE TEMPORARY TABLE t_trace (a INT AUTO_INCREMENT PRIMARY KEY)")
        await scalar(conn, "INSERT INTO t_trace VALUES (NULL), (NULL)")
        left = (conn.insert_id(), conn.affected_rows())
    assert left == (1, 2)
    async with pool.acquire() as conn:
        assert (conn.insert_id(), conn.affected_rows()) == left
