"""TLS: a pool configured for TLS never falls back to plaintext."""

from __future__ import annotations

import pymysql
import pytest

from conftest import Admin, PoolFactory


async def test_tls_configured_but_not_offered_is_refused(
    make_pool: PoolFactory, mysql_dsn: str, admin: Admin
) -> None:
    row = await admin.scalar("SELECT @@have_ssl")
    if row == "YES":
        pytest.skip("the test server offers TLS; this test needs one that doesn't")
    dsn = mysql_dsn + ("&" if "?" in mysql_dsn else "?") + "ssl=true&ssl_verify=false"
    pool = await make_pool(dsn)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await pool.acquire()
    assert refused.value.args[0] == 2026
    assert "plaintext" in refused.value.args[1]
    stats = pool.stats()
    assert (stats.open, stats.opened, stats.opening) == (0, 0, 0)  # nothing kept, slot freed
