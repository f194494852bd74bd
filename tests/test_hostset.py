"""The host-choice rules on their own (no server): where new connections go,
when a connection is misplaced, and how a failing host backs off.

The pool over real hosts is in test_hosts.py and test_cluster.py; these
tests pin the rules' arithmetic, in particular that what ``candidates()``
picks is always ``preferred()``, so rebalancing at check-in can't loop.
"""

from __future__ import annotations

import pytest

from mysqlpool import ConnectParams
from mysqlpool._backoff import BACKOFF_FIRST
from mysqlpool._hosts import HOST_BACKOFF_CAP, LOAD_BALANCE, Host, HostSet, LoadBalance, Target
from mysqlpool._server_state import ServerState

PARAMS = ConnectParams(hosts=["a:3306", "b:3306", "c:3306"], user="app")


def host_set(load_balance: LoadBalance = "failover", target: Target = "any") -> HostSet:
    return HostSet(PARAMS, load_balance, target)


def open_one(hosts: HostSet, now: float = 0.0) -> Host:
    """What the pool does for one new connection that succeeds."""
    host = hosts.candidates(now)[0]
    host.open += 1
    return host


def loads(hosts: HostSet) -> list[int]:
    return [host.open for host in hosts.hosts]


def test_hosts_follow_the_dsn_each_with_its_own_parameters() -> None:
    hosts = host_set()
    assert [host.label for host in hosts.hosts] == ["a:3306", "b:3306", "c:3306"]
    assert [host.params.hosts for host in hosts.hosts] == [
        [("a", 3306)],
        [("b", 3306)],
        [("c", 3306)],
    ]
    assert {host.params.user for host in hosts.hosts} == {"app"}


def test_failover_takes_the_first_host_that_is_up() -> None:
    hosts = host_set()
    assert [open_one(hosts).label for _ in range(3)] == ["a:3306"] * 3
    hosts.mark_down(hosts.hosts[0], "refused", now=0.0)
    assert open_one(hosts).label == "b:3306"
    assert not hosts.preferred(hosts.hosts[0])  # down
    assert hosts.preferred(hosts.hosts[1])
    hosts.mark_up(hosts.hosts[0], None)
    assert not hosts.preferred(hosts.hosts[1])  # the first is back: fail back


@pytest.mark.parametrize("policy", [p for p in LOAD_BALANCE if p != "failover"])
def test_spreading_stays_within_one_and_never_calls_its_own_pick_misplaced(
    policy: LoadBalance,
) -> None:
    hosts = host_set(policy)
    for count in range(1, 31):
        picked = open_one(hosts)
        assert hosts.preferred(picked), (policy, loads(hosts))
        assert max(loads(hosts)) - min(loads(hosts)) <= 1
        assert sum(loads(hosts)) == count


def test_round_robin_rotates() -> None:
    hosts = host_set("round_robin")
    assert [open_one(hosts).label for _ in range(6)] == ["a:3306", "b:3306", "c:3306"] * 2


def test_a_host_back_from_failure_catches_up_and_the_crowded_ones_give_way() -> None:
    hosts = host_set("round_robin")
    back = hosts.hosts[2]
    hosts.mark_down(back, "refused", now=0.0)
    for _ in range(6):
        open_one(hosts)
    assert loads(hosts) == [3, 3, 0]
    hosts.mark_up(back, None)
    assert not hosts.preferred(hosts.hosts[0])  # 3 >= 0 + 2: move one over
    hosts.hosts[0].open -= 1  # check-in closed it; its replacement:
    assert open_one(hosts) is back
    assert loads(hosts) == [2, 3, 1]


def test_prefer_replica_spreads_over_replicas_and_leaves_the_primary_alone() -> None:
    hosts = host_set("round_robin", "prefer_replica")
    primary, first, second = hosts.hosts
    hosts.mark_up(primary, ServerState(read_only=False))
    hosts.mark_up(first, ServerState(read_only=True))
    hosts.mark_up(second, ServerState(read_only=True))
    for _ in range(8):
        picked = open_one(hosts)
        assert picked is not primary
        assert hosts.preferred(picked)  # no churn against the idle primary
    assert loads(hosts) == [0, 4, 4]
    primary.open = 1
    assert not hosts.preferred(primary)  # a replica is up: move off the primary


def test_refusals_by_target_and_galera_state() -> None:
    writable, read_only = ServerState(read_only=False), ServerState(read_only=True)
    donor = ServerState(read_only=False, galera_state="Donor/Desynced", ready=False)
    assert host_set(target="primary").refusal(read_only) is not None
    assert host_set(target="primary").refusal(writable) is None
    assert host_set(target="replica").refusal(writable) is not None
    assert host_set(target="prefer_replica").refusal(writable) is None
    refusal = host_set().refusal(donor)
    assert refusal is not None
    assert "Donor/Desynced" in refusal


def test_backoff_grows_only_when_a_retry_fails() -> None:
    hosts = host_set()
    host = hosts.hosts[0]
    assert hosts.mark_down(host, "refused", now=100.0)  # it was up
    assert host.failures == 1
    assert 100 + BACKOFF_FIRST * 0.5 <= host.retry_at <= 100 + BACKOFF_FIRST * 1.5
    first_retry = host.retry_at
    # Other connects that were already under way fail too: the same outage.
    assert not hosts.mark_down(host, "refused", now=100.1)
    assert (host.failures, host.retry_at) == (1, first_retry)
    # The retry, once due, fails: the backoff doubles.
    hosts.mark_down(host, "refused", now=first_retry)
    assert host.failures == 2
    assert host.retry_at - first_retry >= BACKOFF_FIRST * 2 * 0.5
    assert host.failures_total == 2


def test_candidates_put_resting_hosts_last_soonest_first() -> None:
    hosts = host_set()
    a, b, c = hosts.hosts
    hosts.mark_down(a, "refused", now=0.0)
    hosts.mark_down(b, "refused", now=0.0)
    a.retry_at, b.retry_at = 9.0, 5.0
    assert hosts.candidates(now=1.0) == [c, b, a]
    assert hosts.candidates(now=6.0) == [b, c, a]  # b's backoff ran out: tried in order
    assert hosts.next_retry() == 5.0
    assert hosts.due(now=6.0) == [b]


def test_a_host_that_answers_but_is_not_ready_is_retried_soon_however_long_it_was_away() -> None:
    hosts = host_set()
    host = hosts.hosts[0]
    now = 0.0
    for _ in range(6):  # refused again and again while it was dead: 0.5, 1, 2, 4, 5, 5 s
        hosts.mark_down(host, "refused", now=now)
        assert host.retry_at - now <= HOST_BACKOFF_CAP * 1.5  # never left alone for long
        now = host.retry_at
    assert host.failures == 6
    # Back, but still joining the cluster: the next try is a first step away.
    hosts.mark_down(host, "Galera node not ready (Joined)", now=now, answering=True)
    assert host.failures == 1
    assert host.retry_at - now <= BACKOFF_FIRST * 1.5
