"""The private server fixture: its own datadir and port, real TCP login, and it
survives SIGKILL, restart and graceful stop with its data intact."""

from __future__ import annotations

import socket
from pathlib import Path

import pymysql
import pytest

from privateserver import PrivateServer

TABLE = "privateserver_selftest"


def login(server: PrivateServer) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    return pymysql.connect(
        host="127.0.0.1", port=server.port, user="root", database="test", connect_timeout=2
    )


def query(server: PrivateServer, sql: str) -> tuple[object, ...] | None:
    conn = login(server)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row: tuple[object, ...] | None = cur.fetchone()
        conn.commit()
        return row
    finally:
        conn.close()


def test_private_server_is_its_own_server_with_real_auth(private_server: PrivateServer) -> None:
    server = private_server
    assert server.port != 3306
    row = query(server, "SELECT @@port, @@datadir, CURRENT_USER(), DATABASE()")
    assert row is not None
    port, datadir, user, db = row
    assert port == server.port
    assert Path(str(datadir)).resolve() == server.datadir.resolve()
    assert (user, db) == ("root@127.0.0.1", "test")
    # Real authentication: a wrong password is refused.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host="127.0.0.1", port=server.port, user="root", password="wrong")
    assert refused.value.args[0] == 1045


@pytest.mark.slow
def test_kill_restart_and_stop_keep_port_and_data(private_server: PrivateServer) -> None:
    server = private_server
    query(server, f"CREATE OR REPLACE TABLE {TABLE} (v INT) ENGINE=InnoDB")
    query(server, f"INSERT INTO {TABLE} VALUES (42)")
    try:
        server.kill()
        assert not server.running
        with pytest.raises(pymysql.err.OperationalError) as down:
            login(server)
        assert down.value.args[0] == 2003  # nothing listens: refused at once

        server.restart()
        assert server.running
        assert query(server, f"SELECT v FROM {TABLE}") == (42,)  # committed row survived

        server.stop()
        assert not server.running
        server.start()
        assert query(server, "SELECT @@port") == (server.port,)
    finally:
        if not server.running:
            server.start()
        query(server, f"DROP TABLE IF EXISTS {TABLE}")


@pytest.mark.slow
def test_remove_stops_the_server_and_deletes_its_folder(tmp_path: Path) -> None:
    server = PrivateServer(tmp_path / "server")
    server.start()
    pid = server.pid
    assert pid is not None
    assert server.base.exists()
    server.remove()
    assert not server.running
    assert not server.base.exists()
    with socket.socket() as sock:  # the port is free again
        assert sock.connect_ex(("127.0.0.1", server.port)) != 0
