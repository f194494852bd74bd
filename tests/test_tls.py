"""TLS: a pool configured for TLS gets it, verified, or refuses to connect.

A private server with a self-signed certificate (made here with
``cryptography``) proves the positive side; the shared test server, which
offers no TLS, proves that a configured pool never falls back to
plaintext (aiomysql alone silently would).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

import drivers
from certs import self_signed
from conftest import Admin, PoolFactory, scalar
from privateserver import PrivateServer, missing_tools

ERR = drivers.errors()  # the run's driver's error classes


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivateServer, Path]]:
    problem = missing_tools()
    if problem is not None:
        pytest.skip(f"no private server: {problem}")
    base = tmp_path_factory.mktemp("tlsserver")
    cert, key = self_signed(base)
    server = PrivateServer(
        base, options=(f"--ssl-cert={cert}", f"--ssl-key={key}", f"--ssl-ca={cert}")
    )
    try:
        server.start()
        yield server, cert
    finally:
        server.remove()


def _with(dsn: str, query: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + query


async def test_tls_is_negotiated_and_the_certificate_verified(
    make_pool: PoolFactory, tls_server: tuple[PrivateServer, Path]
) -> None:
    server, cert = tls_server
    pool = await make_pool(_with(server.dsn, f"ssl_ca={cert}"))
    async with pool.acquire() as conn:
        async with conn.cursor() as cur:
            await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = await cur.fetchone()
        assert row is not None
        assert row[1], "the session is not encrypted"


async def test_a_certificate_from_another_ca_is_refused(
    make_pool: PoolFactory,
    tls_server: tuple[PrivateServer, Path],
    tmp_path: Path,
) -> None:
    server, _ = tls_server
    stranger, _ = self_signed(tmp_path)  # same name, another key: not the server's CA
    pool = await make_pool(_with(server.dsn, f"ssl_ca={stranger}"))
    with pytest.raises(ERR.OperationalError):
        await pool.acquire()
    assert pool.stats().open == 0


async def test_tls_configured_but_not_offered_is_refused(
    make_pool: PoolFactory, mysql_dsn: str, admin: Admin
) -> None:
    if await admin.scalar("SELECT @@have_ssl") == "YES":
        pytest.skip("the test server offers TLS; this test needs one that doesn't")
    pool = await make_pool(_with(mysql_dsn, "ssl=true&ssl_verify=false"))
    with pytest.raises(ERR.OperationalError) as refused:
        await pool.acquire()
    assert refused.value.args[0] == 2026
    assert "plaintext" in refused.value.args[1]
    stats = pool.stats()
    assert (stats.open, stats.opened, stats.opening) == (0, 0, 0)  # nothing kept, slot freed


async def test_tls_not_offered_goes_on_in_plaintext_only_when_allowed(
    make_pool: PoolFactory, mysql_dsn: str, admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    if await admin.scalar("SELECT @@have_ssl") == "YES":
        pytest.skip("the test server offers TLS; this test needs one that doesn't")
    pool = await make_pool(_with(mysql_dsn, "ssl=true&ssl_verify=false&ssl_allow_plaintext=true"))
    if drivers.name() == "asyncmy":
        # asyncmy has no plaintext fallback: it still refuses, and says why.
        with pytest.raises(drivers.errors().OperationalError) as refused:
            await pool.acquire()
        assert refused.value.args[0] == 2026
        assert "needs the aiomysql driver" in refused.value.args[1]
        return
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert await cur.fetchone() == ("Ssl_cipher", "")  # no cipher: in clear
    assert "ssl_allow_plaintext=true" in pool.name
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("offers no TLS; connected in plaintext" in message for message in warnings)


async def test_plain_pool_on_the_tls_server_still_works(
    make_pool: PoolFactory, tls_server: tuple[PrivateServer, Path]
) -> None:
    server, _ = tls_server
    pool = await make_pool(server.dsn)
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT 1") == 1


# -- a server that asks for the password in clear (PAM) ------------------------

# Unique per run: suites running side by side must not remove each other's service.
PAM_SERVICE = Path(f"/etc/pam.d/mysqlpool-test-clear-{secrets.token_hex(3)}")


@pytest.fixture(scope="module")
def pam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A private server with TLS whose account ``clear`` logs in through PAM
    with ``mysql_clear_password``; yields its DSN and CA certificate.

    The PAM service (pam_permit) is a file of this test's, removed after.
    """
    problem = missing_tools()
    if problem is not None:
        pytest.skip(f"no private server: {problem}")
    if not Path("/usr/lib/mysql/plugin/auth_pam_v1.so").exists() or not PAM_SERVICE.parent.is_dir():
        pytest.skip("needs MariaDB's auth_pam_v1 plugin and /etc/pam.d")
    base = tmp_path_factory.mktemp("pamserver")
    cert, key = self_signed(base)
    PAM_SERVICE.write_text("auth required pam_permit.so\naccount required pam_permit.so\n")
    server = PrivateServer(
        base,
        options=(
            f"--ssl-cert={cert}",
            f"--ssl-key={key}",
            "--plugin-load-add=auth_pam_v1.so",
            "--pam-use-cleartext-plugin=ON",
        ),
    )
    try:
        server.start()
        admin = pymysql.connect(host="127.0.0.1", port=server.port, user="root", database="test")
        try:
            with admin.cursor() as cur:
                cur.execute(
                    "CREATE USER 'clear'@'127.0.0.1' IDENTIFIED VIA pam USING %s",
                    (PAM_SERVICE.name,),
                )
                cur.execute("GRANT SELECT ON test.* TO 'clear'@'127.0.0.1'")
        finally:
            admin.close()
        yield drivers.on_driver(f"mysql://clear:pam-secret@127.0.0.1:{server.port}/test"), cert
    finally:
        server.remove()
        PAM_SERVICE.unlink(missing_ok=True)


async def test_a_cleartext_password_request_without_tls_is_refused(
    make_pool: PoolFactory, pam_server: tuple[str, Path]
) -> None:
    dsn, _ = pam_server
    pool = await make_pool(dsn)
    with pytest.raises(ERR.OperationalError) as refused:
        await pool.acquire()
    assert refused.value.args[0] == 2059
    assert "in clear" in refused.value.args[1]
    assert "pam-secret" not in str(refused.value)
    assert pool.stats().open == 0


async def test_a_cleartext_password_over_tls_is_sent(
    make_pool: PoolFactory, pam_server: tuple[str, Path]
) -> None:
    dsn, cert = pam_server
    pool = await make_pool(_with(dsn, f"ssl_ca={cert}"))
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT CURRENT_USER()") == "clear@127.0.0.1"
        if drivers.name() == "aiomysql":  # asyncmy does not record the plugin it used
            assert conn._auth_plugin_used == "mysql_clear_password"
