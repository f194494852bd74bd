"""mysqlpool.prometheus: the collector, scraped as Prometheus would scrape it.

Values are checked against ``pool.stats()`` after known sequences on the real
server, through ``generate_latest`` and over real HTTP on loopback (the scrape
then runs in prometheus_client's server thread, not on the event loop).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import sys
import threading
import urllib.request
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from mysqlpool import Pool, PoolManager, PoolOverloaded, PoolStats, PoolTimeout, parse_dsn
from mysqlpool.prometheus import PoolCollector

PoolFactory = Callable[..., Awaitable[Pool]]

SECRET = "s3cretpw"
UNREACHABLE = f"mysql://u:{SECRET}@127.0.0.1:1/x"  # never connected to: stats need no server

GAUGES = {
    "mysqlpool_connections_open": "open",
    "mysqlpool_connections_idle": "idle",
    "mysqlpool_connections_in_use": "in_use",
    "mysqlpool_connections_opening": "opening",
    "mysqlpool_waiting": "waiting",
    "mysqlpool_pool_size": "pool_size",
    "mysqlpool_max_overflow": "max_overflow",
}
COUNTERS = {
    "mysqlpool_connections_opened_total": "opened",
    "mysqlpool_connections_closed_total": "closed",
    "mysqlpool_connections_recycled_total": "recycled",
    "mysqlpool_connections_discarded_total": "discarded",
    "mysqlpool_acquires_total": "acquires",
    "mysqlpool_acquire_timeouts_total": "timeouts",
    "mysqlpool_acquire_wait_seconds_total": "wait_time",
    "mysqlpool_acquire_overloaded_total": "overloaded",
}
SAMPLES = {**GAUGES, **COUNTERS}
# Per server of the host list, with labels pool and host.
HOST_GAUGES = {
    "mysqlpool_host_up": "state",
    "mysqlpool_host_connections_open": "open",
    "mysqlpool_host_connections_in_use": "in_use",
}
HOST_COUNTERS = {"mysqlpool_host_failures_total": "failures"}

# sample name -> {pool label: value}
Scrape = dict[str, dict[str, float]]


def parse(text: str) -> Scrape:
    """Every pool-wide sample of the exposition text, by name and ``pool`` label."""
    found: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "host" in sample.labels:
                continue  # per host: see parse_hosts()
            assert set(sample.labels) == {"pool", "driver"}, sample
            assert sample.labels["driver"] in ("aiomysql", "asyncmy"), sample
            pools = found.setdefault(sample.name, {})
            assert sample.labels["pool"] not in pools, f"duplicate series {sample}"
            pools[sample.labels["pool"]] = sample.value
    return found


def parse_hosts(text: str) -> dict[str, dict[tuple[str, str], float]]:
    """Every per-host sample, by name and (pool, host) labels."""
    found: dict[str, dict[tuple[str, str], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "host" in sample.labels:
                assert set(sample.labels) == {"pool", "driver", "host"}, sample
                key = (sample.labels["pool"], sample.labels["host"])
                found.setdefault(sample.name, {})[key] = sample.value
    return found


def scrape(registry: CollectorRegistry) -> Scrape:
    return parse(generate_latest(registry).decode())


def labels(found: Scrape) -> set[str]:
    """The pool labels present in a scrape."""
    return {label for pools in found.values() for label in pools}


def series_of(found: Scrape, label: str) -> dict[str, float]:
    """One pool's samples, by sample name."""
    return {name: pools[label] for name, pools in found.items() if label in pools}


def expected(stats: PoolStats) -> dict[str, float]:
    """What the collector must report for these stats."""
    values = {name: getattr(stats, field) for name, field in SAMPLES.items()}
    if stats.max_overflow is None:
        del values["mysqlpool_max_overflow"]
    return values


@contextmanager
def http_endpoint(registry: CollectorRegistry) -> Iterator[str]:
    """prometheus_client's own HTTP server on a free loopback port, stopped on exit."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert not thread.is_alive()


def fetch(url: str) -> str:
    """GET ``url`` (blocking: call it through ``asyncio.to_thread``)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        body: bytes = response.read()
    return body.decode()


async def hold_and_time_out(pool: Pool) -> Any:
    """Three acquires, then hold one and let an acquire(timeout=0) time out.

    Returns the held connection (the caller releases it).
    """
    for _ in range(3):
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
    held = await pool.acquire()
    with pytest.raises(PoolTimeout):
        await pool.acquire(timeout=0)
    return held


# ------------------------------------------------------------------ module


def test_import_without_prometheus_client_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "mysqlpool.prometheus")
    with pytest.raises(ImportError, match=r"pip install 'mysqlpool\[prometheus\]'"):
        importlib.import_module("mysqlpool.prometheus")


def test_every_documented_metric_is_described_with_its_type() -> None:
    collector = PoolCollector(registry=None)
    described = {family.name: family.type for family in collector.describe()}
    assert described == {
        **{name: "gauge" for name in GAUGES},
        **{name.removesuffix("_total"): "counter" for name in COUNTERS},
        **{name: "gauge" for name in HOST_GAUGES},
        **{name.removesuffix("_total"): "counter" for name in HOST_COUNTERS},
    }
    # With no pool, every family is still there, without samples.
    assert all(not family.samples for family in collector.collect())


def test_namespace_prefixes_every_metric() -> None:
    registry = CollectorRegistry()
    pool = Pool(UNREACHABLE)
    PoolCollector(pool, registry=registry, namespace="app_db")
    found = scrape(registry)
    assert set(found) == {"app_db_" + name.removeprefix("mysqlpool_") for name in SAMPLES}
    with pytest.raises(ValueError, match="namespace"):
        PoolCollector(registry=None, namespace="not valid")


# ------------------------------------------------------------- the values


async def test_scrape_reports_exactly_what_stats_says(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    registry = CollectorRegistry()
    PoolCollector(pool, registry=registry)

    held = await hold_and_time_out(pool)
    try:
        found = scrape(registry)
        stats = pool.stats()
        assert series_of(found, pool.name) == expected(stats)
        assert found["mysqlpool_acquires_total"][pool.name] == 4 == stats.acquires
        assert found["mysqlpool_acquire_timeouts_total"][pool.name] == 1
        assert found["mysqlpool_connections_in_use"][pool.name] == 1
        assert found["mysqlpool_connections_idle"][pool.name] == 0
        assert found["mysqlpool_max_overflow"][pool.name] == 0
        assert found["mysqlpool_acquire_wait_seconds_total"][pool.name] > 0
    finally:
        await pool.release(held)

    # Read at scrape time, not cached: the release shows at once.
    after = scrape(registry)
    assert after["mysqlpool_connections_in_use"][pool.name] == 0
    assert after["mysqlpool_connections_idle"][pool.name] == 1
    assert series_of(after, pool.name) == expected(pool.stats())


async def test_a_host_not_contacted_yet_has_no_up_sample(mysql_dsn: str) -> None:
    pool = Pool(mysql_dsn, name="fresh")
    registry = CollectorRegistry()
    PoolCollector(pool, registry=registry)
    found = parse_hosts(generate_latest(registry).decode())
    (address,) = pool.stats().hosts
    assert pool.stats().hosts[address].state == "unknown"
    assert "mysqlpool_host_up" not in found  # neither up nor down yet
    assert found["mysqlpool_host_connections_open"] == {("fresh", address): 0}
    await pool.close()


async def test_scrape_reports_every_host_of_the_pool(
    make_pool: PoolFactory, mysql_dsn: str
) -> None:
    pool = await make_pool(pool_size=2)
    registry = CollectorRegistry()
    PoolCollector(pool, registry=registry)
    async with pool.acquire():
        found = parse_hosts(generate_latest(registry).decode())
        (address,) = pool.stats().hosts
        host = pool.stats().hosts[address]
    assert address == "{}:{}".format(*parse_dsn(mysql_dsn).hosts[0])
    key = (pool.name, address)
    assert found["mysqlpool_host_up"] == {key: 1}
    assert found["mysqlpool_host_connections_open"] == {key: host.open} == {key: 1}
    assert found["mysqlpool_host_connections_in_use"] == {key: 1}
    assert found["mysqlpool_host_failures_total"] == {key: 0}


async def test_scrape_over_http_matches_stats(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0)
    registry = CollectorRegistry()
    PoolCollector(pool, registry=registry)

    with http_endpoint(registry) as url:
        held = await hold_and_time_out(pool)
        try:
            while_held = parse(await asyncio.to_thread(fetch, url))
            stats_held = pool.stats()
        finally:
            await pool.release(held)
        released = parse(await asyncio.to_thread(fetch, url))

    assert series_of(while_held, pool.name) == expected(stats_held)
    assert while_held["mysqlpool_connections_in_use"][pool.name] == 1
    assert while_held["mysqlpool_acquire_timeouts_total"][pool.name] == 1
    assert while_held["mysqlpool_acquires_total"][pool.name] == stats_held.acquires == 4
    assert series_of(released, pool.name) == expected(pool.stats())
    assert released["mysqlpool_connections_in_use"][pool.name] == 0


async def test_scrapes_from_a_thread_during_a_busy_workload(make_pool: PoolFactory) -> None:
    """Scrapes in another thread while waiters queue and leave: none fails."""
    pool = await make_pool(pool_size=2, max_overflow=0)
    registry = CollectorRegistry()
    PoolCollector(pool, registry=registry)
    done = threading.Event()

    def scraper() -> int:
        scrapes = 0
        try:
            for _ in range(300):
                found = scrape(registry)
                assert pool.name in found["mysqlpool_acquires_total"]
                scrapes += 1
        finally:
            done.set()
        return scrapes

    async def worker() -> int:
        count = 0
        while not done.is_set() or count == 0:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT 1")
            count += 1
        return count

    # Switch threads as often as possible, so scrapes land mid-transition.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        scrapes, *counts = await asyncio.gather(
            asyncio.to_thread(scraper), *(worker() for _ in range(20))
        )
    finally:
        sys.setswitchinterval(interval)
    assert scrapes == 300
    final = scrape(registry)
    assert series_of(final, pool.name) == expected(pool.stats())
    assert final["mysqlpool_acquires_total"][pool.name] == sum(counts)


def test_unbounded_max_overflow_has_no_sample() -> None:
    registry = CollectorRegistry()
    bounded = Pool(UNREACHABLE, name="bounded", max_overflow=3)
    unbounded = Pool(UNREACHABLE, name="unbounded", max_overflow=None)
    PoolCollector(bounded, unbounded, registry=registry)
    found = scrape(registry)
    assert found["mysqlpool_max_overflow"] == {"bounded": 3}
    assert found["mysqlpool_pool_size"] == {"bounded": 5, "unbounded": 5}


# ------------------------------------------------------------------ labels


def test_label_is_the_pool_name_and_never_the_password() -> None:
    registry = CollectorRegistry()
    pool = Pool(UNREACHABLE)  # never opened: it still has stats
    PoolCollector(pool, registry=registry)
    text = generate_latest(registry).decode()
    assert SECRET not in text
    found = parse(text)
    assert labels(found) == {pool.name}
    assert SECRET not in pool.name
    assert "127.0.0.1:1/x" in pool.name
    assert series_of(found, pool.name) == expected(pool.stats())


def test_each_series_is_labelled_with_the_pools_driver() -> None:
    pytest.importorskip("asyncmy")
    registry = CollectorRegistry()
    on_aiomysql = Pool(UNREACHABLE, name="plain")  # never opened: it still has stats
    on_asyncmy = Pool(UNREACHABLE, name="fast", driver="asyncmy")
    PoolCollector(on_aiomysql, on_asyncmy, registry=registry)
    drivers: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            drivers.setdefault(sample.labels["pool"], set()).add(sample.labels["driver"])
    assert drivers == {"plain": {"aiomysql"}, "fast": {"asyncmy"}}


async def test_two_pools_give_two_label_sets(make_pool: PoolFactory) -> None:
    busy = await make_pool(name="busy")
    quiet = await make_pool(name="quiet")
    registry = CollectorRegistry()
    PoolCollector(busy, quiet, registry=registry)
    for _ in range(2):
        async with busy.acquire():
            pass

    found = scrape(registry)
    assert labels(found) == {"busy", "quiet"}
    assert found["mysqlpool_acquires_total"] == {"busy": 2, "quiet": 0}
    assert series_of(found, "busy") == expected(busy.stats())
    assert series_of(found, "quiet") == expected(quiet.stats())


def test_two_pools_with_one_name_do_not_collide() -> None:
    registry = CollectorRegistry()
    first = Pool(UNREACHABLE, pool_size=1)
    second = Pool(UNREACHABLE, pool_size=2)
    assert first.name == second.name
    PoolCollector(first, second, registry=registry)
    found = scrape(registry)
    assert found["mysqlpool_pool_size"] == {first.name: 1, f"{first.name} #2": 2}


# ------------------------------------------------ which pools are reported


async def test_a_managers_new_pool_appears_at_the_next_scrape(mysql_dsn: str) -> None:
    registry = CollectorRegistry()
    manager = PoolManager(pool_size=2)
    try:
        collector = PoolCollector(manager, registry=registry)
        assert labels(scrape(registry)) == set()

        async with manager.acquire(mysql_dsn) as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
        (first,) = manager.pools.values()
        found = scrape(registry)
        assert labels(found) == {first.name}
        assert series_of(found, first.name) == expected(first.stats())
        assert found["mysqlpool_acquires_total"][first.name] == 1

        second = await manager.get_pool(UNREACHABLE)  # opened, not connected (min_size 0)
        found = scrape(registry)
        assert labels(found) == {first.name, second.name}
        assert SECRET not in generate_latest(registry).decode()

        # A pool given directly and through its manager is reported once.
        collector.add(first)
        assert labels(scrape(registry)) == {first.name, second.name}
    finally:
        await manager.close()
    # A closed manager's pools are all closed: nothing left to report.
    assert labels(scrape(registry)) == set()


async def test_closed_and_removed_pools_disappear(make_pool: PoolFactory) -> None:
    kept = await make_pool(name="kept")
    closing = await make_pool(name="closing")
    removed = await make_pool(name="removed")
    registry = CollectorRegistry()
    collector = PoolCollector(kept, closing, removed, registry=registry)
    assert labels(scrape(registry)) == {"kept", "closing", "removed"}

    await closing.close()
    assert labels(scrape(registry)) == {"kept", "removed"}

    collector.remove(removed)
    assert labels(scrape(registry)) == {"kept"}
    assert collector.sources == [kept, closing]
    with pytest.raises(KeyError):
        collector.remove(removed)

    collector.add(removed)  # and back
    collector.add(removed)  # adding twice changes nothing
    assert labels(scrape(registry)) == {"kept", "removed"}
    assert collector.sources == [kept, closing, removed]


def test_the_collector_does_not_keep_a_pool_alive() -> None:
    registry = CollectorRegistry()
    pool = Pool(UNREACHABLE, name="transient")
    ref = weakref.ref(pool)
    collector = PoolCollector(pool, registry=registry)
    assert labels(scrape(registry)) == {"transient"}
    del pool
    gc.collect()
    assert ref() is None
    assert labels(scrape(registry)) == set()
    assert collector.sources == []


def test_add_refuses_what_is_not_a_pool() -> None:
    collector = PoolCollector(registry=None)
    with pytest.raises(TypeError, match="Pool or a PoolManager"):
        collector.add("mysql://root@127.0.0.1/test")  # type: ignore[arg-type]
    assert collector.sources == []


# -------------------------------------------------------------- registries


def test_register_and_unregister() -> None:
    registry = CollectorRegistry()
    pool = Pool(UNREACHABLE, name="p")
    collector = PoolCollector(pool, registry=None)
    assert scrape(registry) == {}  # registry=None registers nowhere

    collector.register(registry)
    assert labels(scrape(registry)) == {"p"}
    # One collector per namespace and registry: a second one's names clash.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PoolCollector(pool, registry=registry)

    collector.unregister(registry)
    assert scrape(registry) == {}
    with pytest.raises(KeyError):
        collector.unregister(registry)

    other = CollectorRegistry()
    collector.register(registry)
    collector.register(other)
    collector.unregister()  # from every registry it is on
    assert scrape(registry) == scrape(other) == {}


async def test_refusals_past_max_waiting_are_counted(make_pool: PoolFactory) -> None:
    pool = await make_pool(pool_size=1, max_overflow=0, max_waiting=0)
    registry = CollectorRegistry()
    PoolCollector(pool, registry=registry)
    async with pool.acquire():
        for _ in range(2):
            with pytest.raises(PoolOverloaded):
                await pool.acquire()
    found = scrape(registry)
    assert found["mysqlpool_acquire_overloaded_total"][pool.name] == 2 == pool.stats().overloaded
    assert found["mysqlpool_acquire_timeouts_total"][pool.name] == 0
