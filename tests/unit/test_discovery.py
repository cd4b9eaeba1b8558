"""gateways_from: the policy block, gateway names, the merge rule (grace), the resolver loop's
state (last set kept on failure, one alert per outage, recovery), the schedule following the set,
and the coordinator's verdict on a region with nothing discovered yet. The answers here come
from a scripted resolver; tests/e2e/test_discovery.py resolves against a real BIND."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from failover import events as ev
from failover.alerts import Event, Notifier
from failover.coordinator import Coordinator
from failover.coordinator.audit import entry_for
from failover.discovery import Discovery, DiscoveryError, Seen, gateway_name, merge
from failover.model import Status
from failover.policy import Gateway, Policy, parse_policy
from failover.policy._discovery import GatewaysFrom, discovery_warnings
from failover.probes.schedule import Schedule
from failover.store.sqlite import SqliteStore
from tests.unit.test_policy import base, invalid


def gw(name: str, address: str) -> Gateway:
    return Gateway(name=name, address=address)


def discovered_policy(**gateways_from: Any) -> dict[str, Any]:
    data = base()
    data["regions"][0] = {
        "name": "us-east-1",
        "priority": 10,
        "gateways_from": {"dns": "_gw._tcp.east.example.test", "type": "SRV", "refresh": "1s", **gateways_from},
    }
    return data


# -- the policy block ---------------------------------------------------------------------------


def test_a_region_takes_gateways_from_instead_of_or_beside_a_list() -> None:
    policy = parse_policy(discovered_policy(server="127.0.0.1:5353"))
    east = policy.region("us-east-1")
    assert east.gateways == [] and east.gateways_from is not None
    assert east.gateways_from.host_port == ("127.0.0.1", 5353)
    assert east.gateways_from.grace_seconds == 3.0  # three refreshes by default
    both = discovered_policy(grace="10s")
    both["regions"][0]["gateways"] = [{"name": "use1-static", "address": "192.0.2.9"}]
    region = parse_policy(both).region("us-east-1")
    assert [g.name for g in region.gateways] == ["use1-static"]
    assert region.gateways_from is not None and region.gateways_from.grace_seconds == 10.0


def test_a_region_needs_gateways_or_gateways_from(tmp_path: Path) -> None:
    data = base()
    del data["regions"][1]["gateways"]
    _, message = invalid(tmp_path, data)
    assert "needs gateways, gateways_from or both" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"dns": "not a name"}, "is not a DNS name"),
        ({"type": "CNAME"}, "type"),
        ({"server": "127.0.0.1:99999"}, "is not host:port"),
        ({"timeout": "5s", "refresh": "1s"}, "timeout is longer than refresh"),
    ],
)
def test_bad_gateways_from_is_refused(tmp_path: Path, change: dict[str, str], expected: str) -> None:
    _, message = invalid(tmp_path, discovered_policy(**change))
    assert expected in message


def test_min_healthy_is_a_warning_not_an_error_for_a_discovered_region(tmp_path: Path) -> None:
    data = discovered_policy()
    data["regions"][1]["gateways"].append({"name": "euw1-b", "address": "198.51.100.11"})
    data["health"]["min_healthy_gateways"] = 2
    policy = parse_policy(data)  # the discovered region's size is unknown until it is resolved
    (warning,) = discovery_warnings(policy)
    assert warning.startswith("regions[0].gateways_from: min_healthy_gateways (2)")
    data["health"]["min_healthy_gateways"] = 3
    err, _ = invalid(tmp_path, data)  # the listed region is still checked
    assert err.problems == [
        ("health.min_healthy_gateways", "3 is more than region 'eu-west-1' has (2): it could never be healthy")
    ]


def test_an_eip_cannot_name_a_discovered_gateway(tmp_path: Path) -> None:
    data = discovered_policy()
    data["domains"][0]["traffic"] = [
        {"kind": "eip", "allocation_id": "eipalloc-0123abcd", "gateways": {"web-0": "i-0123456789abcdef0"}}
    ]
    _, message = invalid(tmp_path, data)
    assert "unknown gateway 'web-0'" in message and "cannot carry an Elastic IP" in message


# -- names and the merge rule ---------------------------------------------------------------------


def test_gateway_names_are_stable_and_valid() -> None:
    assert gateway_name("east", "10.0.0.5") == "east-10.0.0.5"
    assert gateway_name("east", "fd00::1") == "east-fd00--1"
    assert gateway_name("east", "10.0.0.5", "web-0.gw.east.svc.cluster.local.") == "web-0.gw.east.svc.cluster.local"
    assert gateway_name("east", "10.0.0.5", "Node1.node.dc1.consul", several=True) == "node1.node.dc1.consul-10.0.0.5"
    long_target = "a-very-long-statefulset-replica-name-0.with-a-headless-service.east.svc.cluster.local"
    name = gateway_name("east", "10.0.0.5", long_target)
    assert len(name) == 63 and name == gateway_name("east", "10.0.0.5", long_target)
    assert name != gateway_name("east", "10.0.0.5", long_target.replace("-0.", "-1."))
    Gateway(name=name, address="10.0.0.5")  # the policy's own name rule accepts it


def test_merge_adds_at_once_and_removes_after_grace() -> None:
    a, b, c = gw("a", "10.0.0.1"), gw("b", "10.0.0.2"), gw("c", "10.0.0.3")
    known = merge({}, [a, b], now=0.0, grace=10.0)
    assert list(known) == ["a", "b"]
    known = merge(known, [a, c], now=5.0, grace=10.0)  # b missing from one answer: it stays
    assert list(known) == ["a", "b", "c"] and known["b"].at == 0.0
    known = merge(known, [a, c], now=10.0, grace=10.0)  # missing for the whole grace: gone
    assert list(known) == ["a", "c"]
    # an address now answered under another name: the old name goes at once (one gateway, not two)
    renamed = merge({"a": Seen(a, 0.0)}, [gw("a2", "10.0.0.1")], now=1.0, grace=10.0)
    assert list(renamed) == ["a2"]


# -- the resolver loop ----------------------------------------------------------------------------


class Answers:
    """A scripted resolver: each call returns the next set, or raises when it is an error text."""

    def __init__(self, *script: list[Gateway] | str) -> None:
        self.script = list(script)
        self.calls = 0

    async def __call__(self, source: GatewaysFrom, region: str) -> list[Gateway]:
        self.calls += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, str):
            raise DiscoveryError(step)
        return step


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, cls: type[ev.Event], **fields: Any) -> ev.Event:
        event = cls(at=0.0, observer="us-east-1", **fields)
        self.events.append(event)
        return event

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_failed_answer_keeps_the_last_set_and_is_told_once_until_it_recovers() -> None:
    policy = parse_policy(discovered_policy(grace="10s"))
    a, b = gw("web-0", "10.0.0.1"), gw("web-1", "10.0.0.2")
    answers = Answers([a, b], "no answer within 1s", "SERVFAIL", [a])
    told, clock = Recorder(), Clock()
    discovery = Discovery(policy, told, resolver=answers, clock=clock)
    (source,) = discovery._sources
    assert await discovery.refresh(source) == ({"web-0", "web-1"}, set())
    for _ in range(2):
        clock.now += 30  # far past the grace: a failure still removes nothing
        assert await discovery.refresh(source) == (set(), set())
        assert [g.name for g in discovery.current("us-east-1")] == ["web-0", "web-1"]
    assert discovery.failing("us-east-1") == "SERVFAIL"
    assert told.kinds() == ["GatewaysDiscovered", "DiscoveryFailed"]  # one alert for the whole outage
    failed = told.events[1]
    assert isinstance(failed, ev.DiscoveryFailed) and failed.kept == 2 and failed.error == "no answer within 1s"
    # it answers again: recovered; web-1 is missing but was seen 60 s ago (> grace): it leaves now
    assert await discovery.refresh(source) == (set(), {"web-1"})
    assert told.kinds()[2:] == ["DiscoveryRecovered", "GatewaysDiscovered"]
    assert discovery.failing("us-east-1") is None
    assert [g.name for g in policy.region("us-east-1").gateways] == ["web-0"]


async def test_no_first_answer_starts_empty_and_says_so() -> None:
    policy = parse_policy(discovered_policy(startup_wait="300ms"))
    answers, told = Answers("us-east-1.example.test does not exist (NXDOMAIN)"), Recorder()
    discovery = Discovery(policy, told, resolver=answers)
    started = time.monotonic()
    await discovery.first_answers()
    assert 0.25 < time.monotonic() - started < 2.0  # waited its startup_wait, retrying, and no longer
    assert answers.calls >= 2
    assert policy.region("us-east-1").gateways == []
    (failed,) = told.events
    assert isinstance(failed, ev.DiscoveryFailed) and failed.kept == 0
    assert "no gateway known yet" in ev.describe(failed)


async def test_listed_gateways_win_over_discovered_ones() -> None:
    data = discovered_policy()
    data["regions"][0]["gateways"] = [{"name": "web-0", "address": "10.0.0.9"}, {"name": "x", "address": "10.0.0.2"}]
    policy = parse_policy(data)
    discovery = Discovery(policy, Recorder(), resolver=Answers([gw("web-0", "10.0.0.1"), gw("web-1", "10.0.0.2")]))
    await discovery.refresh(discovery._sources[0])
    assert discovery.current("us-east-1") == [gw("web-0", "10.0.0.9"), gw("x", "10.0.0.2")]


# -- events: audit, alerts -------------------------------------------------------------------------


def test_discovery_events_are_audited_and_alerted() -> None:
    policy = parse_policy(discovered_policy())
    failed = ev.DiscoveryFailed(at=1.0, observer="o", region="us-east-1", source="gw.test", error="timeout", kept=0)
    recovered = ev.DiscoveryRecovered(at=2.0, observer="o", region="us-east-1", source="gw.test", gateways=2)
    found = ev.GatewaysDiscovered(
        at=3.0, observer="o", region="us-east-1", source="gw.test", added=("a",), removed=("b",), gateways=1
    )
    kinds = []
    for event in (failed, recovered, found):
        entry = entry_for(event)
        assert entry is not None
        kinds.append(entry.kind)
    assert kinds == ["discovery_failed", "discovery_recovered", "discovered"]
    sent: list[Event] = []
    notifier = Notifier(policy, sent.append)
    for event in (failed, recovered, found):
        notifier.on_event(event)
    assert [(e.kind, e.severity) for e in sent] == [("discovery_failed", "critical"), ("discovery_recovered", "info")]
    assert sent[0].resets == ("discovery_recovered:us-east-1",)  # the next outage is news again


def test_a_region_never_discovered_is_alerted_after_start_once() -> None:
    """At start DiscoveryFailed is raised before the alerts listen: the notifier sees the empty
    region after each evaluation instead, and tells it once until discovery recovers."""
    from failover.model import Snapshot

    policy = parse_policy(discovered_policy())
    sent: list[Event] = []
    notifier = Notifier(policy, sent.append)
    snap = Snapshot(5.0, {}, {}, {}, frozenset())
    notifier.observe([], snap)
    notifier.observe([], snap)
    assert [(e.kind, e.severity, e.region) for e in sent] == [("discovery_failed", "critical", "us-east-1")]
    notifier.on_event(ev.DiscoveryRecovered(at=6.0, observer="o", region="us-east-1", source="x", gateways=1))
    policy.region("us-east-1").set_discovered((gw("web-0", "10.0.0.1"),))
    notifier.observe([], snap)  # it has gateways now: nothing more to tell
    assert [e.kind for e in sent] == ["discovery_failed", "discovery_recovered"]


# -- the coordinator and the schedule -------------------------------------------------------------


def test_a_region_with_nothing_discovered_is_unknown_not_down(tmp_path: Path) -> None:
    policy = parse_policy(discovered_policy())
    store = SqliteStore(tmp_path / "state.db")
    coordinator = Coordinator(policy, store, {}, clock=lambda: 1000.0)
    try:
        own = coordinator.observations.own_view(1000.0)[1][("api.example.com", "us-east-1")]
        assert (own.status, own.total, own.reason) == (Status.UNKNOWN, 0, "no gateway discovered yet")
        merged = coordinator.snapshot().health["api.example.com"]["us-east-1"]
        assert merged.status is Status.UNKNOWN  # never "0/0 gateways failing"
    finally:
        store.close()


async def until(condition: Callable[[], bool], deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_schedule_adds_and_removes_jobs_while_running() -> None:
    runs: dict[str, int] = {}

    async def run(key: str) -> None:
        runs[key] = runs.get(key, 0) + 1

    schedule: Schedule[str] = Schedule(run)
    schedule.add("a", 0.05, 1.0)
    schedule.start()
    try:
        await until(lambda: runs.get("a", 0) >= 2)
        schedule.add("b", 0.05, 1.0)  # found later: its first run is due at once
        await until(lambda: runs.get("b", 0) >= 1, 1.0)
        with pytest.raises(ValueError, match="already scheduled"):
            schedule.add("b", 0.05, 1.0)
        schedule.remove("a")
        assert "a" not in schedule and "b" in schedule
        await asyncio.sleep(0.06)  # a run of "a" already started may still end
        after = runs["a"]
        await until(lambda: runs["b"] >= 6)
        assert runs["a"] == after
        schedule.add("a", 0.05, 1.0)  # back again: a new job
        await until(lambda: runs["a"] > after)
        assert schedule.stats()["jobs"] == 2
    finally:
        await schedule.aclose()


def test_discovered_gateways_get_probes() -> None:
    from failover.probes import build_probes

    policy: Policy = parse_policy(discovered_policy())
    policy.region("us-east-1").set_discovered((gw("web-0", "10.0.0.1"),))
    probes = build_probes(policy, {"web-0"})
    assert {(k.gateway, p.target.region, p.target.address) for k, p in probes.items()} == {
        ("web-0", "us-east-1", "10.0.0.1")
    }
    assert len(probes) == 2  # one per check


async def test_one_shot_commands_resolve_once_and_say_what_failed() -> None:
    from failover.discovery import discover_once

    data = discovered_policy()
    data["regions"][1] = {"name": "eu-west-1", "gateways_from": {"dns": "gw.west.example.test"}}
    policy = parse_policy(data)

    async def answers(source: GatewaysFrom, region: str) -> list[Gateway]:
        if region == "eu-west-1":
            raise DiscoveryError("no answer within 3s")
        return [gw("web-1", "10.0.0.2"), gw("web-0", "10.0.0.1")]

    assert await discover_once(policy, answers) == [
        "eu-west-1: cannot resolve gw.west.example.test: no answer within 3s"
    ]
    assert [g.name for g in policy.region("us-east-1").gateways] == ["web-0", "web-1"]
    assert policy.region("eu-west-1").gateways == []


async def test_a_slow_first_answer_within_the_startup_wait_is_no_outage() -> None:
    policy = parse_policy(discovered_policy(startup_wait="5s"))
    answers, told = Answers("no answer within 1s", [gw("web-0", "10.0.0.1")]), Recorder()
    discovery = Discovery(policy, told, resolver=answers)
    await discovery.first_answers()
    assert answers.calls == 2
    assert told.kinds() == ["GatewaysDiscovered"]  # neither failed nor recovered: nobody needs telling
    assert [g.name for g in discovery.current("us-east-1")] == ["web-0"]
