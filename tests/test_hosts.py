"""A pool over several hosts: where connections go, and what happens when a host fails.

Each "host" here is a fault proxy on its own loopback port in front of the
test server, so a test can refuse, blackhole or reset one host while the
others keep working. (Real clusters, Galera and a primary with a replica,
are in test_cluster.py.)

A host's backoff is run out on a :class:`~mysqlpool.testing.ManualClock`
(advanced by the host's ``retry_in``), never waited for; only the tests of
a silent host, which only a real network timeout can tell, take wall time.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

import drivers
from clocks import settle
from conftest import Figure, scalar
from faultproxy import FaultProxy
from mysqlpool import ConnectParams, NoServerAvailable, Pool, PoolManager, PoolTimeout, parse_dsn
from mysqlpool.testing import ManualClock
from polling import pool_tasks, until

ERR = drivers.errors()  # the run's driver's error classes

PoolFactory = Callable[..., Awaitable[Pool]]

# How late acquire() may return past its timeout on this (noisy, shared) machine.
MARGIN = 0.5


@pytest_asyncio.fixture
async def hosts(mysql_dsn: str) -> AsyncIterator[list[FaultProxy]]:
    """Three proxies, each a separate "host" in front of the test server."""
    target = parse_dsn(mysql_dsn)
    proxies = [FaultProxy(target.host, target.port) for _ in range(3)]
    for proxy in proxies:
        await proxy.__aenter__()
    try:
        yield proxies
    finally:
        for proxy in proxies:
            await proxy.aclose()


@pytest.fixture
def multi_params(mysql_dsn: str, hosts: list[FaultProxy]) -> ConnectParams:
    """The test server's parameters with the three proxies as the host list."""
    return parse_dsn(mysql_dsn).replace(hosts=[("127.0.0.1", proxy.port) for proxy in hosts])


def label(proxy: FaultProxy) -> str:
    return f"127.0.0.1:{proxy.port}"


def open_per_host(pool: Pool, proxies: list[FaultProxy]) -> list[int]:
    hosts = pool.stats().hosts
    return [hosts[label(proxy)].open for proxy in proxies]


async def hold(pool: Pool, count: int) -> list[Any]:
    """Check out ``count`` connections at once (so each is a new one)."""
    return list(await asyncio.gather(*(pool.acquire() for _ in range(count))))


async def give_back(pool: Pool, conns: list[Any]) -> None:
    for conn in conns:
        await pool.release(conn)


# -- where new connections go ---------------------------------------------------


async def test_failover_puts_every_connection_on_the_first_host(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    pool = await make_pool(multi_params, pool_size=4)
    conns = await hold(pool, 4)
    assert open_per_host(pool, hosts) == [4, 0, 0]
    await give_back(pool, conns)


@pytest.mark.parametrize("policy", ["round_robin", "random", "least_connections"])
async def test_spreading_policies_keep_hosts_within_one_connection(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy], policy: str
) -> None:
    pool = await make_pool(multi_params, pool_size=7, load_balance=policy)
    conns = await hold(pool, 7)
    counts = open_per_host(pool, hosts)
    assert sum(counts) == 7
    assert max(counts) - min(counts) <= 1, counts
    assert [proxy.accepted for proxy in hosts] == counts  # one socket per connection
    await give_back(pool, conns)


async def test_round_robin_rotates_over_the_hosts_one_by_one(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    pool = await make_pool(multi_params, pool_size=6, load_balance="round_robin")
    for expected in ([1, 0, 0], [1, 1, 0], [1, 1, 1], [2, 1, 1]):
        conns = await hold(pool, sum(expected))
        assert sorted(open_per_host(pool, hosts), reverse=True) == expected
        await give_back(pool, conns)


async def test_stats_report_every_host(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    pool = await make_pool(multi_params, pool_size=3, load_balance="round_robin")
    conns = await hold(pool, 3)
    await pool.release(conns[0])
    stats = pool.stats()
    assert list(stats.hosts) == [label(proxy) for proxy in hosts]  # the DSN's order
    for proxy in hosts:
        host = stats.hosts[label(proxy)]
        assert (host.host, host.port, host.state, host.failures) == (
            "127.0.0.1",
            proxy.port,
            "up",
            0,
        )
        assert host.role == "primary"  # the test server is writable
        assert host.open == host.idle + host.in_use == 1
    assert sum(h.idle for h in stats.hosts.values()) == stats.idle == 1
    assert sum(h.in_use for h in stats.hosts.values()) == stats.in_use == 2
    await give_back(pool, conns[1:])


async def test_hosts_are_unknown_until_the_pool_first_connects_to_them(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    hosts[0].refuse()
    pool = await make_pool(multi_params, pool_size=3, load_balance="failover")
    assert [host.state for host in pool.stats().hosts.values()] == ["unknown"] * 3
    async with pool.acquire():
        pass
    # The first host refused, the second answered; the third was never needed.
    assert [host.state for host in pool.stats().hosts.values()] == ["down", "up", "unknown"]


async def test_a_single_host_pool_reports_its_one_host(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=2)
    async with pool.acquire():
        (host,) = pool.stats().hosts.values()
        assert (host.state, host.open, host.in_use, host.role) == ("up", 1, 1, None)


# -- a host that fails ------------------------------------------------------------


async def test_failover_with_first_host_down_uses_the_second_at_once(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy], figure: Figure
) -> None:
    hosts[0].refuse()
    pool = await make_pool(multi_params, pool_size=4, timeout=5)
    began = time.monotonic()
    conns = await hold(pool, 4)
    figure("first 4 acquires with the first host refusing (s)", round(time.monotonic() - began, 3))
    assert open_per_host(pool, hosts) == [0, 4, 0]
    first = pool.stats().hosts[label(hosts[0])]
    assert (first.state, first.failures) == ("down", 1)  # one outage, however many tried it
    assert first.down_reason is not None
    assert "2003" in first.down_reason
    await give_back(pool, conns)


async def test_failover_skips_a_silent_first_host_after_one_attempt(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy], figure: Figure
) -> None:
    hosts[0].blackhole()  # accepts, never answers: only a timeout tells
    pool = await make_pool(multi_params, pool_size=2, timeout=2)
    began = time.monotonic()
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT 1") == 1
    first = time.monotonic() - began
    # The silent host gets half of the 2 s, not all of it: the second answers in time.
    assert first < 2
    began = time.monotonic()
    conns = await hold(pool, 2)
    later = time.monotonic() - began
    figure("failover past a blackholed first host: first acquire (s)", round(first, 3))
    figure("failover past a blackholed first host: next acquires (s)", round(later, 3))
    assert later < 0.5  # the silent host is down now: nobody waits for it again
    assert open_per_host(pool, hosts)[1] == 2
    await give_back(pool, conns)


async def test_one_deadline_across_hosts_that_all_stay_silent(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    for proxy in hosts:
        proxy.blackhole()
    pool = await make_pool(multi_params, pool_size=1, max_overflow=0)
    began = time.monotonic()
    with pytest.raises(PoolTimeout):
        await asyncio.wait_for(pool.acquire(timeout=1.0), 1.0 + 5)
    assert time.monotonic() - began < 1.0 + MARGIN
    assert pool.stats().opening == 0
    assert pool.stats().open == 0


async def test_every_host_down_fails_fast_naming_each_host(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    for proxy in hosts:
        proxy.refuse()
    pool = await make_pool(multi_params, pool_size=2)
    for _ in range(2):  # again while they rest: still tried, as a last resort
        with pytest.raises(NoServerAvailable) as failure:
            await pool.acquire(timeout=5)
        message = str(failure.value)
        assert all(label(proxy) in message for proxy in hosts), message
        assert isinstance(failure.value, ERR.OperationalError)
        assert failure.value.args[0] == 2003
    assert [h.failures for h in pool.stats().hosts.values()] == [1, 1, 1]
    assert pool.stats().open == 0
    assert (pool.stats().open, pool.stats().opening) == (0, 0)


async def test_a_lost_host_is_marked_down_and_its_idle_connections_closed(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    pool = await make_pool(multi_params, pool_size=6, load_balance="round_robin")
    conns = await hold(pool, 6)
    on_first = [c for c in conns if drivers.port_of(c) == hosts[0].port]  # the proxy's port
    assert len(on_first) == 2
    await pool.release(on_first[1])  # one idle on the first host, one in use
    hosts[0].refuse()
    hosts[0].reset_all()
    with pytest.raises(ERR.OperationalError) as lost:
        async with on_first[0].cursor() as cur:
            await cur.execute("SELECT 1")
    assert lost.value.args[0] in (2006, 2013)
    await pool.release(on_first[0])  # as its holder would, after the error
    first = pool.stats().hosts[label(hosts[0])]
    assert (first.state, first.open) == ("down", 0)
    # New connections go to the other two; nothing was lost from the count.
    more = await hold(pool, 2)
    assert all(drivers.port_of(conn) != hosts[0].port for conn in more)
    await give_back(pool, more + [c for c in conns if drivers.port_of(c) != hosts[0].port])
    pool.check_invariants()


async def test_a_host_back_from_failure_is_used_again_without_any_call(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy], figure: Figure
) -> None:
    clock = ManualClock()
    hosts[0].refuse()
    pool = await make_pool(multi_params, pool_size=4, min_size=4, clock=clock)
    assert open_per_host(pool, hosts) == [0, 4, 0]  # failover to the second
    await hosts[0].pass_through()
    # The prober finds it when its backoff runs out (0.25-0.75 s the first
    # time) and keeps its probe connection. The backoff is clock time.
    await settle(clock, timers=2)  # the reaper and the prober, asleep on the clock
    backoff = pool.stats().hosts[label(hosts[0])].retry_in
    assert backoff is not None
    assert 0.25 <= backoff <= 0.75
    clock.advance(backoff / 2)
    assert clock.pending == 2  # the prober slept on: the host answers, but nobody asked
    assert pool.stats().hosts[label(hosts[0])].state == "down"
    assert hosts[0].accepted == 0
    retry_in = pool.stats().hosts[label(hosts[0])].retry_in
    assert retry_in is not None
    clock.advance(retry_in)  # its backoff has run out
    began = time.monotonic()
    await until(lambda: pool.stats().hosts[label(hosts[0])].state == "up", "host 1 up", 5)
    await until(lambda: not pool_tasks(pool, "host prober"), "the prober done", 5)
    figure("failed host: backoff before the prober retried it (clock s)", round(backoff, 3))
    figure("failed host: its probe, until back in use (wall s)", round(time.monotonic() - began, 3))
    assert hosts[0].accepted == 1  # one probe did it
    # Its probe connection took the place of an idle one on the second host.
    assert open_per_host(pool, hosts) == [1, 3, 0]
    assert pool.stats().recycled == 1
    # Failback: connections on the second host are closed as they come back,
    # and their replacements open on the first.
    for _ in range(3):
        conns = await hold(pool, 4)
        await give_back(pool, conns)
    assert open_per_host(pool, hosts)[1] == 0
    assert pool.stats().recycled == 1 + 3  # the probe's swap, then the second host's three


async def test_spreading_rebalances_onto_a_host_that_came_back(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    clock = ManualClock()
    hosts[2].refuse()
    pool = await make_pool(multi_params, pool_size=6, load_balance="least_connections", clock=clock)
    conns = await hold(pool, 6)
    assert open_per_host(pool, hosts) == [3, 3, 0]
    await hosts[2].pass_through()
    await settle(clock, timers=2)  # the reaper and the prober, asleep on the clock
    retry_in = pool.stats().hosts[label(hosts[2])].retry_in
    assert retry_in is not None
    assert retry_in > 0
    assert hosts[2].accepted == 0  # not tried again yet: the clock has not moved
    clock.advance(retry_in)  # its backoff has run out: the prober retries it
    await until(lambda: pool.stats().hosts[label(hosts[2])].state == "up", "host 3 up", 5)
    assert hosts[2].accepted == 1
    await give_back(pool, conns)
    for _ in range(3):
        await give_back(pool, await hold(pool, 6))
    counts = open_per_host(pool, hosts)
    assert max(counts) - min(counts) <= 1, counts


async def test_target_replica_refuses_a_writable_server(
    make_pool: PoolFactory, multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    pool = await make_pool(multi_params, pool_size=1, target="replica")
    with pytest.raises(NoServerAvailable, match="writable"):
        await pool.acquire(timeout=5)
    assert {h.role for h in pool.stats().hosts.values()} == {"primary"}
    assert pool.stats().open == 0


async def test_target_primary_and_prefer_replica_accept_a_writable_server(
    make_pool: PoolFactory, multi_params: ConnectParams
) -> None:
    for target in ("primary", "prefer_replica"):
        pool = await make_pool(multi_params, pool_size=1, target=target)
        async with pool.acquire() as conn:
            assert await scalar(conn, "SELECT @@read_only") == 0


async def test_a_dict_cursor_configured_by_the_user_does_not_confuse_the_checks(
    make_pool: PoolFactory, multi_params: ConnectParams
) -> None:
    dict_rows = multi_params.replace(**drivers.cursor_keyword("DictCursor"))
    pool = await make_pool(dict_rows, target="primary")
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT 1 AS one")
        assert await cur.fetchone() == {"one": 1}
    assert pool.recycle is not None  # recycle="auto" read wait_timeout too


# -- the host list and the rest of the API ---------------------------------------------


async def test_options_come_from_the_dsn_too(mysql_dsn: str, hosts: list[FaultProxy]) -> None:
    parts = urllib.parse.urlsplit(mysql_dsn)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = userinfo + "@" + ",".join(label(proxy) for proxy in hosts)
    query = "&".join(filter(None, [parts.query, "load_balance=round_robin&target=primary"]))
    dsn = urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    async with Pool(dsn, pool_size=3) as pool:
        assert pool.params.hosts == [("127.0.0.1", proxy.port) for proxy in hosts]
        conns = await hold(pool, 3)
        assert open_per_host(pool, hosts) == [1, 1, 1]
        await give_back(pool, conns)


@pytest.mark.parametrize(("option", "value"), [("load_balance", "nearest"), ("target", "leader")])
def test_bad_policy_names_are_refused_by_name(
    multi_params: ConnectParams, option: str, value: str
) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(ValueError, match=f"{option} must be one of .*{value}"):
        Pool(multi_params, **options)


async def test_manager_keys_pools_by_host_list(
    multi_params: ConnectParams, hosts: list[FaultProxy]
) -> None:
    reordered = multi_params.replace(hosts=list(reversed(multi_params.hosts)))
    async with PoolManager(pool_size=2, load_balance="round_robin") as manager:
        first = await manager.get_pool(multi_params)
        assert await manager.get_pool(multi_params.replace()) is first
        assert await manager.get_pool(reordered) is not first
        async with manager.acquire(multi_params) as conn:
            assert await scalar(conn, "SELECT 1") == 1


async def test_a_single_host_pool_with_a_target_checks_the_role(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, target="replica")
    with pytest.raises(NoServerAvailable, match="writable"):
        await pool.acquire(timeout=5)
    (host,) = pool.stats().hosts.values()
    assert (host.state, host.role) == ("down", "primary")
    assert pool.stats().open == 0


async def test_hosts_given_as_a_keyword(
    mysql_dsn: str, hosts: list[FaultProxy], make_pool: PoolFactory
) -> None:
    addresses = [("127.0.0.1", proxy.port) for proxy in hosts]
    pool = await make_pool(mysql_dsn, hosts=addresses, load_balance="round_robin", pool_size=3)
    assert pool.params.hosts == addresses
    conns = await hold(pool, 3)
    assert open_per_host(pool, hosts) == [1, 1, 1]
    await give_back(pool, conns)
