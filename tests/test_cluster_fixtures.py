"""The cluster fixtures (cluster.py) do what the failover tests will rely on:
a Galera cluster that replicates, evicts a killed node and takes it back, and
a primary + read-only replica that fails over by promotion."""

from __future__ import annotations

import asyncio
import time

import pymysql
import pytest

from cluster import (
    GaleraCluster,
    PrimaryReplica,
    execute,
    processes_under,
)
from conftest import Figure
from mysqlpool import parse_dsn
from polling import until

TABLE = "cluster_selftest"
APP_USER = "cluster_app"
APP_PASSWORD = "App-password-1"
MB = 1 << 20


def causal(port: int, sql: str) -> list[object]:
    """``sql``'s rows on one Galera node, after it applied all the cluster committed."""
    return execute(port, "SET SESSION wsrep_sync_wait=1", sql)


def test_galera_nodes_are_synced_and_replicate(
    galera_cluster: GaleraCluster, figure: Figure
) -> None:
    cluster = galera_cluster
    assert cluster.start_seconds is not None
    figure("3 galera nodes Synced (s)", f"{cluster.start_seconds:.1f}")
    figure("disk per node (MB)", [cluster.disk_bytes(i) // MB for i in range(3)])
    for i in range(3):
        status = cluster.status(i)
        assert status["wsrep_local_state_comment"] == "Synced"
        assert status["wsrep_cluster_size"] == "3"
        assert status["wsrep_ready"] == "ON"
    assert parse_dsn(cluster.dsn).hosts == [("127.0.0.1", port) for port in cluster.ports]

    first, _, third = cluster.ports
    execute(
        first,
        f"CREATE OR REPLACE TABLE {TABLE} (id INT PRIMARY KEY, v VARCHAR(20))",
        f"INSERT INTO {TABLE} VALUES (1, 'from node 0')",
    )
    assert causal(third, f"SELECT v FROM {TABLE} WHERE id = 1") == [("from node 0",)]


@pytest.mark.slow
def test_killed_node_is_evicted_and_rejoins(galera_cluster: GaleraCluster, figure: Figure) -> None:
    cluster = galera_cluster
    execute(cluster.ports[0], f"CREATE OR REPLACE TABLE {TABLE} (id INT PRIMARY KEY, v INT)")
    try:
        began = time.monotonic()
        cluster.kill(2)
        assert processes_under(cluster.servers[2].base) == []  # no SST leftovers either
        cluster.wait_cluster_size(2, timeout=15)
        evicted = time.monotonic() - began
        # Written while node 2 is away: it must come back with it (by IST).
        execute(cluster.ports[0], f"INSERT INTO {TABLE} VALUES (2, 2)")

        began = time.monotonic()
        cluster.restart(2)
        rejoined = time.monotonic() - began
        figure("kill -> cluster size 2 (s)", f"{evicted:.1f}")
        figure("restart -> Synced (s)", f"{rejoined:.1f}")

        status = cluster.status(2)
        assert status["wsrep_local_state_comment"] == "Synced"
        assert status["wsrep_cluster_size"] == "3"
        assert causal(cluster.ports[2], f"SELECT v FROM {TABLE}") == [(2,)]
    finally:
        cluster.healthy()


async def test_desync_leaves_synced_and_comes_back(galera_cluster: GaleraCluster) -> None:
    cluster = galera_cluster

    async def state_is(expected: str) -> bool:
        status = await asyncio.to_thread(cluster.status, 1)
        return status["wsrep_local_state_comment"] == expected

    try:
        await asyncio.to_thread(cluster.desync, 1, True)
        await until(lambda: state_is("Donor/Desynced"), "node 1 desynced", timeout=10)
        await asyncio.to_thread(cluster.desync, 1, False)
        await until(lambda: state_is("Synced"), "node 1 Synced again", timeout=10)
    finally:
        await asyncio.to_thread(cluster.healthy)


def test_replica_follows_primary_and_is_read_only(
    primary_replica: PrimaryReplica, figure: Figure
) -> None:
    pair = primary_replica
    assert pair.start_seconds is not None
    figure("primary + replica replicating (s)", f"{pair.start_seconds:.1f}")
    assert parse_dsn(pair.dsn).hosts == [
        ("127.0.0.1", pair.primary_port),
        ("127.0.0.1", pair.replica_port),
    ]
    pair.create_user(APP_USER, APP_PASSWORD)
    execute(
        pair.primary_port,
        f"CREATE OR REPLACE TABLE {TABLE} (id INT PRIMARY KEY)",
        f"INSERT INTO {TABLE} VALUES (1)",
    )
    pair.wait_replicated()
    assert execute(pair.replica_port, f"SELECT id FROM {TABLE}") == [(1,)]

    with pytest.raises(pymysql.err.MySQLError) as refused:
        execute(
            pair.replica_port,
            f"INSERT INTO {TABLE} VALUES (2)",
            user=APP_USER,
            password=APP_PASSWORD,
        )
    assert refused.value.args[0] == 1290  # ER_OPTION_PREVENTS_STATEMENT: --read-only


@pytest.mark.slow
def test_promoted_replica_takes_writes(primary_replica: PrimaryReplica) -> None:
    pair = primary_replica
    pair.create_user(APP_USER, APP_PASSWORD)
    execute(pair.primary_port, f"CREATE OR REPLACE TABLE {TABLE} (id INT PRIMARY KEY)")
    pair.wait_replicated()
    try:
        pair.kill_primary()
        pair.promote_replica()
        execute(
            pair.replica_port,
            f"INSERT INTO {TABLE} VALUES (3)",
            user=APP_USER,
            password=APP_PASSWORD,
        )
        assert execute(pair.replica_port, f"SELECT id FROM {TABLE}") == [(3,)]
    finally:
        pair.healthy()
