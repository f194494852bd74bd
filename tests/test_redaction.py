"""The password never shows: not in logs, repr, str, stats, or any error the pool raises.

Runs a small workload with a real password-protected account, DEBUG
logging on, a wrong password, a timeout and a misuse, then searches
everything a user could see for the password.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import drivers
from conftest import Admin
from mysqlpool import Pool, PoolError, PoolManager, PoolTimeout, parse_dsn

USER = "mp_redact_user"
PASSWORD = "Red4cted-Pa55word"
WRONG = "Wr0ng-Pa55word"


@pytest_asyncio.fixture
async def account(admin: Admin, mysql_dsn: str) -> AsyncIterator[str]:
    """A DSN for a real account whose password is PASSWORD."""
    params = parse_dsn(mysql_dsn)
    for host in ("127.0.0.1", "localhost"):
        who = f"'{USER}'@'{host}'"
        await admin.scalar(f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY %s", PASSWORD)
        await admin.scalar(f"GRANT SELECT ON `{params.db}`.* TO '{USER}'@'{host}'")
    try:
        yield str(params.replace(user=USER, password=PASSWORD)).replace("***", PASSWORD)
    finally:
        for host in ("127.0.0.1", "localhost"):
            await admin.scalar(f"DROP USER IF EXISTS '{USER}'@'{host}'")


async def test_password_never_shown(account: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mysqlpool")
    seen: list[str] = []

    pool = Pool(account, pool_size=1, max_overflow=0, pre_ping=0, reset_on_return="reset")
    seen += [str(pool.params), repr(pool.params), repr(pool), pool.name, str(pool.stats())]
    async with pool:
        conn = await pool.acquire()
        async with conn.cursor() as cur:
            await cur.execute("SELECT CURRENT_USER()")
            (current,) = await cur.fetchone()
        assert current.startswith(USER)  # the password really was used
        with pytest.raises(PoolTimeout) as timeout:
            await pool.acquire(timeout=0)
        seen.append(str(timeout.value))
        await pool.release(conn)
        with pytest.raises(PoolError) as misuse:
            await pool.release(conn)
        seen.append(str(misuse.value))
        seen += [repr(pool), str(pool.stats())]

    async with PoolManager(pool_size=1) as manager:
        wrong = account.replace(PASSWORD, WRONG)
        with pytest.raises(drivers.errors().OperationalError) as denied:
            async with manager.acquire(wrong):
                pass
        assert denied.value.args[0] == 1045
        seen += [str(denied.value), repr(denied.value), repr(manager), str(manager.stats())]
        seen += [repr(key) for key in manager.pools]

    with pytest.raises(ValueError, match="no_such_option") as bad:
        Pool(account + ("&" if "?" in account else "?") + "no_such_option=1")
    seen.append(str(bad.value))

    seen += [record.getMessage() for record in caplog.records]
    seen += [record.exc_text or "" for record in caplog.records]
    assert any("closing" in line for line in seen)  # the DEBUG logs were captured
    leaks = [text for text in seen if PASSWORD in text or WRONG in text]
    assert leaks == []

