"""Coordinators on a real etcd, in one process: a leader that cannot reach its DNS provider hands
the leadership over; a store change wakes a watcher once, not in a loop; a start without etcd
does not crash."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import TYPE_CHECKING

from failover.adapters.abc import Live
from failover.adapters.zonefile import ZonefileAdapter
from failover.coordinator import Coordinator
from failover.errors import AdapterError
from failover.model import ProbeResult, StreakKey
from failover.policy import Policy, parse_policy
from failover.store import open_store

if TYPE_CHECKING:
    from tests.support.etcd import EtcdCluster

pytest_plugins = ["tests.support.etcd"]

DOMAIN = "api.example.com"
KEYS = [StreakKey(DOMAIN, "e1", "tcp:80"), StreakKey(DOMAIN, "w1", "tcp:80")]
_prefixes = itertools.count(1)


def policy(url: str, observer: str) -> Policy:
    return parse_policy(
        {
            "service": "s",
            "observer": observer,
            "observers": ["east", "west", "witness"],
            "regions": [
                {"name": "east", "priority": 1, "gateways": [{"name": "e1", "address": "127.0.0.11"}]},
                {"name": "west", "priority": 2, "gateways": [{"name": "w1", "address": "127.0.0.21"}]},
            ],
            "domains": [{"name": DOMAIN, "checks": [{"kind": "tcp", "port": 80}]}],
            "health": {"rise": 1, "fall": 1},
            "state": {"url": url, "ttl": "3s", "loop_wait": "1s", "retry_timeout": "1s"},
        }
    )


def url_of(server: EtcdCluster) -> str:
    hosts = ",".join(e.removeprefix("http://") for e in server.endpoints)
    return f"etcd://{hosts}/coord-{next(_prefixes)}"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Unreachable(ZonefileAdapter):
    """A provider this coordinator cannot reach (its path to DNS is cut)."""

    def read(self) -> Live:
        raise AdapterError(f"{self.name}: connection timed out")


def coordinator(url: str, observer: str, adapter: ZonefileAdapter, clock: Clock) -> Coordinator:
    pol = policy(url, observer)
    store = open_store(pol.state, observer, pol.report_freshness())
    return Coordinator(pol, store, {DOMAIN: [adapter]}, clock=clock, targets=KEYS)


def test_a_leader_that_cannot_reach_dns_hands_the_leadership_over(etcd_server: EtcdCluster, tmp_path: Path) -> None:
    url, clock = url_of(etcd_server), Clock()
    cut = coordinator(url, "east", Unreachable(DOMAIN, tmp_path / "z.zone", "example.com."), clock)
    fine = coordinator(url, "west", ZonefileAdapter(DOMAIN, tmp_path / "z.zone", "example.com."), clock)
    try:
        for c in (cut, fine):
            c.record({k: ProbeResult(True, 0.001, "up") for k in KEYS})
        assert cut.campaign() is not None and fine.campaign() is None  # east leads
        fine.evaluate()  # west votes (two of three voters: a quorum); it does not lead
        cut.evaluate()  # east is elected, but the leader's adapter cannot be reached
        assert cut.store.leading() is not None
        clock.now += 4  # past the lease TTL of nothing but failed changes (ttl 3s)
        cut.campaign()
        cut.evaluate()
        assert cut.store.leading() is None, "the stuck leader still holds the leadership"
        assert fine.campaign() is not None  # the other one takes over ...
        fine.evaluate()
        assert fine.adapters[DOMAIN][0].read().addresses == ("127.0.0.11",)  # ... and publishes
        assert cut.campaign() is None  # the stuck one stays out of the race for a while
    finally:
        cut.store.close()
        fine.store.close()


def test_one_change_wakes_a_watcher_once(etcd_server: EtcdCluster) -> None:
    url = url_of(etcd_server)
    pol = policy(url, "east")
    leader = open_store(pol.state, "east")
    watcher = open_store(pol.state, "west")
    try:
        assert watcher.wait_for_change(0.2) is False  # nothing yet (and the watch starts from now)
        leader.campaign("east")
        assert watcher.wait_for_change(3.0) is True
        leader.resign()  # the leader key and the member key go in one revision
        assert watcher.wait_for_change(3.0) is True
        started = time.monotonic()
        assert watcher.wait_for_change(0.5) is False  # not the same revision again and again
        assert time.monotonic() - started >= 0.4
    finally:
        leader.close()
        watcher.close()


def test_a_coordinator_starts_without_etcd_and_acts_on_nothing(tmp_path: Path) -> None:
    url = "etcd://127.0.0.1:9/nowhere"  # nothing listens on the discard port
    zone = ZonefileAdapter(DOMAIN, tmp_path / "z.zone", "example.com.")
    lonely = coordinator(url, "east", zone, Clock())  # does not raise: counts rise/fall afresh
    try:
        lonely.record({k: ProbeResult(True, 0.001, "up") for k in KEYS}, flush=False)
        assert lonely.gateway_statuses(DOMAIN) == {"e1": "up", "w1": "up"}
    finally:
        lonely.store.close()
    assert not (tmp_path / "z.zone").exists()


def test_a_running_observer_keeps_its_vote_and_one_that_stopped_loses_it(etcd_server: EtcdCluster) -> None:
    from failover.model import RegionHealth, Status

    url = url_of(etcd_server)
    pol = policy(url, "east")  # ttl 3s: a report's lease lives at least that long
    running, stopped, reader = (open_store(pol.state, name, report_ttl=3) for name in ("east", "west", "witness"))
    verdict = {(DOMAIN, "east"): RegionHealth("east", Status.UP, 1, 1, 1.0, "up")}
    try:
        running.put_region_health("east", verdict, time.time())
        stopped.put_region_health("west", verdict, time.time())  # then never renews: a cron run that ended
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline and "west" in reader.all_region_health(0.0):
            running.campaign("east")  # the daemon's renewal, every loop_wait
            time.sleep(0.5)
        views = reader.all_region_health(0.0)
        assert "west" not in views, "a report nobody renews outlived its lease"
        assert "east" in views, "a running observer's report expired although it renews"
    finally:
        for store in (running, stopped, reader):
            store.close()
