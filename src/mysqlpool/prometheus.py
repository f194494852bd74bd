"""Prometheus metrics for mysqlpool pools (the ``prometheus`` extra).

::

    from mysqlpool.prometheus import PoolCollector

    collector = PoolCollector(pool, manager)   # registers on prometheus_client's REGISTRY

:class:`PoolCollector` is a custom collector: it reads :meth:`Pool.stats` of
every pool it tracks when Prometheus scrapes, and at no other time. It starts
no task and adds nothing to ``acquire()`` or ``release()``.

Every series has the labels ``pool``: the pool's :attr:`Pool.name`, which by
default is its DSN with the password redacted, and ``driver``: the driver its
connections run on (``aiomysql`` or ``asyncmy``). The names below use the
default namespace ``mysqlpool``.

Gauges
    ``mysqlpool_connections_open``, ``mysqlpool_connections_idle``,
    ``mysqlpool_connections_in_use``, ``mysqlpool_connections_opening``,
    ``mysqlpool_waiting``, ``mysqlpool_pool_size``, ``mysqlpool_max_overflow``
    (no sample for a pool whose ``max_overflow`` is None, i.e. unbounded).
Counters
    ``mysqlpool_connections_opened_total``, ``mysqlpool_connections_closed_total``,
    ``mysqlpool_connections_recycled_total``, ``mysqlpool_connections_discarded_total``,
    ``mysqlpool_acquires_total``, ``mysqlpool_acquire_timeouts_total``,
    ``mysqlpool_acquire_wait_seconds_total``,
    ``mysqlpool_acquire_overloaded_total`` (refused at once by ``max_waiting``).
Per server (labels ``pool``, ``driver`` and ``host``, as ``"host:port"``)
    ``mysqlpool_host_up`` (1 up, 0 down, no sample before the pool's first
    connect to it), ``mysqlpool_host_connections_open``,
    ``mysqlpool_host_connections_in_use``, ``mysqlpool_host_failures_total``.

Which pools are reported:

- a :class:`Pool` given as a source, while it is not closed;
- every pool of a :class:`PoolManager` given as a source, enumerated again at
  each scrape, so a pool the manager creates later appears on the next scrape;
- a closed pool (``pool.closed``) is skipped: once ``close()`` or
  ``terminate()`` began its series disappear instead of being reported,
  frozen, forever;
- sources are held by weak reference: the collector never keeps a pool or a
  manager alive, and one that was garbage-collected simply stops appearing;
- a pool reachable twice (given directly and through a manager) is reported
  once; two distinct pools with the same name get ``" #2"``, ``" #3"``...
  appended to the later ones' label, in source order, so no two series
  collide (give pools distinct ``name=`` to keep labels stable).

A scrape served from another thread (``prometheus_client.start_http_server``)
reads the counters without stopping the event loop: each value is one the
pool held, but two gauges of one scrape may be a transition apart.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "mysqlpool.prometheus needs prometheus_client, which is not installed: "
        "pip install 'mysqlpool[prometheus]'"
    ) from exc

from ._manager import PoolManager
from ._pool import Pool
from ._stats import HostStats, PoolStats

__all__ = ["PoolCollector", "Source"]

logger = logging.getLogger("mysqlpool")

#: What a :class:`PoolCollector` tracks: one pool, or every pool of a manager.
Source = Pool | PoolManager

_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

# A scrape from another thread may catch a pool's waiter deque mid-change.
_STATS_ATTEMPTS = 5

_Family = GaugeMetricFamily | CounterMetricFamily

# (name after the namespace, gauge or counter, help text, value from the stats)
_METRICS: tuple[tuple[str, type[_Family], str, Callable[[PoolStats], float | None]], ...] = (
    (
        "connections_open",
        GaugeMetricFamily,
        "Connections open now (idle + in use).",
        lambda s: s.open,
    ),
    (
        "connections_idle",
        GaugeMetricFamily,
        "Idle connections in the pool's queue.",
        lambda s: s.idle,
    ),
    (
        "connections_in_use",
        GaugeMetricFamily,
        "Connections checked out (or on their way back).",
        lambda s: s.in_use,
    ),
    (
        "connections_opening",
        GaugeMetricFamily,
        "Slots reserved for a connection being opened.",
        lambda s: s.opening,
    ),
    ("waiting", GaugeMetricFamily, "Acquirers queued for a connection.", lambda s: s.waiting),
    (
        "pool_size",
        GaugeMetricFamily,
        "Idle connections the pool keeps (pool_size).",
        lambda s: s.pool_size,
    ),
    (
        "max_overflow",
        GaugeMetricFamily,
        "Connections allowed beyond pool_size under load (no sample: unbounded).",
        lambda s: s.max_overflow,
    ),
    (
        "connections_opened_total",
        CounterMetricFamily,
        "Connections opened.",
        lambda s: s.opened,
    ),
    (
        "connections_closed_total",
        CounterMetricFamily,
        "Connections closed, for any reason.",
        lambda s: s.closed,
    ),
    (
        "connections_recycled_total",
        CounterMetricFamily,
        "Connections closed for age (recycle or max_lifetime).",
        lambda s: s.recycled,
    ),
    (
        "connections_discarded_total",
        CounterMetricFamily,
        "Connections closed as broken or of unknown protocol state.",
        lambda s: s.discarded,
    ),
    ("acquires_total", CounterMetricFamily, "Successful acquires.", lambda s: s.acquires),
    (
        "acquire_timeouts_total",
        CounterMetricFamily,
        "Acquires that raised PoolTimeout.",
        lambda s: s.timeouts,
    ),
    (
        "acquire_wait_seconds_total",
        CounterMetricFamily,
        "Seconds acquirers spent queued or opening a connection.",
        lambda s: s.wait_time,
    ),
    (
        "acquire_overloaded_total",
        CounterMetricFamily,
        "Acquires refused at once with PoolOverloaded: max_waiting were already queued.",
        lambda s: s.overloaded,
    ),
)

# A host not contacted yet ("unknown") has no host_up sample: neither up nor down.
_HOST_UP = {"up": 1.0, "down": 0.0}

# Per server of the pool's host list: labels pool and host ("host:port").
_HOST_METRICS: tuple[tuple[str, type[_Family], str, Callable[[HostStats], float | None]], ...] = (
    (
        "host_up",
        GaugeMetricFamily,
        "1 while the pool sends new connections to this server, 0 while it is down.",
        lambda h: _HOST_UP.get(h.state),
    ),
    (
        "host_connections_open",
        GaugeMetricFamily,
        "The pool's connections to this server, open now.",
        lambda h: h.open,
    ),
    (
        "host_connections_in_use",
        GaugeMetricFamily,
        "The pool's connections to this server, checked out now.",
        lambda h: h.in_use,
    ),
    (
        "host_failures_total",
        CounterMetricFamily,
        "Times this server was marked down.",
        lambda h: h.failures,
    ),
)


class PoolCollector(Collector):
    """A Prometheus collector reporting the stats of pools and managers' pools.

    Args:
        sources: :class:`Pool` and :class:`PoolManager` objects to report
            (more can be added with :meth:`add`).
        registry: registry to register on at once (default: prometheus_client's
            global ``REGISTRY``); None registers nowhere (see :meth:`register`).
        namespace: prefix of every metric name (default ``"mysqlpool"``);
            ``""`` for none.

    Raises:
        TypeError: a source is neither a Pool nor a PoolManager.
        ValueError: ``namespace`` is not a valid metric name prefix, or the
            registry already has metrics with these names (another collector
            with the same namespace: track all pools with one collector).
    """

    def __init__(
        self,
        *sources: Source,
        registry: CollectorRegistry | None = REGISTRY,
        namespace: str = "mysqlpool",
    ) -> None:
        if not isinstance(namespace, str) or (namespace and not _NAMESPACE.fullmatch(namespace)):
            raise ValueError(f"namespace must be a valid Prometheus metric name, got {namespace!r}")
        self._prefix = f"{namespace}_" if namespace else ""
        self._lock = threading.Lock()  # add/remove on the loop vs collect in a scrape thread
        self._sources: list[weakref.ref[Source]] = []
        self._registries: list[CollectorRegistry] = []
        for source in sources:
            self.add(source)
        if registry is not None:
            self.register(registry)

    # ------------------------------------------------------------- sources

    def add(self, source: Source) -> None:
        """Report ``source`` (a Pool, or a PoolManager's pools) from the next scrape on.

        Adding a source already tracked does nothing.

        Raises:
            TypeError: ``source`` is neither a Pool nor a PoolManager.
        """
        if not isinstance(source, (Pool, PoolManager)):
            raise TypeError(f"expected a Pool or a PoolManager, got {type(source).__name__}")
        with self._lock:
            self._prune()
            if any(ref() is source for ref in self._sources):
                return
            self._sources.append(weakref.ref(source))

    def remove(self, source: Source) -> None:
        """Stop reporting ``source`` (its series disappear from the next scrape).

        Raises:
            KeyError: ``source`` is not tracked.
        """
        with self._lock:
            self._prune()
            for index, ref in enumerate(self._sources):
                if ref() is source:
                    del self._sources[index]
                    return
        raise KeyError(f"{source!r} is not tracked by this collector")

    @property
    def sources(self) -> list[Source]:
        """The pools and managers tracked now (those still alive), in order added."""
        with self._lock:
            self._prune()
            return [source for source in (ref() for ref in self._sources) if source is not None]

    def _prune(self) -> None:
        self._sources = [ref for ref in self._sources if ref() is not None]

    def pools(self) -> list[Pool]:
        """The pools the next scrape would report: open ones, each once, in source order."""
        seen: set[int] = set()
        found: list[Pool] = []
        for source in self.sources:
            candidates: Iterable[Pool]
            if isinstance(source, PoolManager):
                candidates = list(source.pools.values())  # new pools show up here
            else:
                candidates = (source,)
            for pool in candidates:
                if pool.closed or id(pool) in seen:
                    continue
                seen.add(id(pool))
                found.append(pool)
        return found

    # ---------------------------------------------------------- registries

    def register(self, registry: CollectorRegistry = REGISTRY) -> None:
        """Register on ``registry`` (default: the global ``REGISTRY``).

        Raises:
            ValueError: the registry already has metrics with these names.
        """
        registry.register(self)
        with self._lock:
            self._registries.append(registry)

    def unregister(self, registry: CollectorRegistry | None = None) -> None:
        """Unregister from ``registry``, or from every registry it was registered on (None).

        Raises:
            KeyError: not registered on ``registry``.
        """
        with self._lock:
            if registry is None:
                targets, self._registries = self._registries, []
            else:
                if not any(r is registry for r in self._registries):
                    raise KeyError("this collector is not registered on that registry")
                targets = [registry]
                self._registries = [r for r in self._registries if r is not registry]
        for target in targets:
            target.unregister(self)

    # ------------------------------------------------------------- collect

    def describe(self) -> list[_Family]:
        """The metric families without samples: lets a registry check names at registration."""
        return self._families()

    def collect(self) -> Iterator[_Family]:
        """Yield every metric family, one sample per open pool, read now."""
        families = self._families()
        labels: set[str] = set()
        for pool in self.pools():
            stats = _snapshot(pool)
            if stats is None:
                continue
            label, count = stats.name, 1
            while label in labels:  # two pools, one name: keep their series apart
                count += 1
                label = f"{stats.name} #{count}"
            labels.add(label)
            driver = pool.params.driver
            pool_families = families[: len(_METRICS)]
            for family, (_, _, _, value_of) in zip(pool_families, _METRICS, strict=True):
                value = value_of(stats)
                if value is not None:
                    family.add_metric([label, driver], value)
            host_families = families[len(_METRICS) :]
            for address, host in stats.hosts.items():
                for family, (_, _, _, host_value) in zip(
                    host_families, _HOST_METRICS, strict=True
                ):
                    value = host_value(host)
                    if value is not None:
                        family.add_metric([label, driver, address], value)
        yield from families

    def _families(self) -> list[_Family]:
        return [
            kind(
                self._prefix + name,
                help_text,
                labels=["pool", "driver"],
                unit="seconds" if name.endswith("_seconds_total") else "",
            )
            for name, kind, help_text, _ in _METRICS
        ] + [
            kind(self._prefix + name, help_text, labels=["pool", "driver", "host"])
            for name, kind, help_text, _ in _HOST_METRICS
        ]

    def __repr__(self) -> str:
        return f"<PoolCollector prefix={self._prefix!r} sources={len(self.sources)}>"


def _snapshot(pool: Pool) -> PoolStats | None:
    """``pool.stats()``, retried if another thread changed the pool mid-read."""
    for _ in range(_STATS_ATTEMPTS):
        try:
            return pool.stats()
        except RuntimeError:  # "deque mutated during iteration", from a scrape thread
            continue
    logger.warning("pool %s: stats kept changing during a scrape; skipped", pool.name)
    return None
