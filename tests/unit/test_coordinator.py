"""The coordinator's bookkeeping around the pure engine, with a real sqlite store and zone file."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover.adapters.zonefile import ZonefileAdapter
from failover.coordinator import Coordinator
from failover.errors import PolicyError
from failover.model import Override, ProbeResult, Status, Streak, StreakKey
from failover.policy import parse_policy
from failover.store.sqlite import SqliteStore

DOMAIN = "api.example.com"


def policy(**extra: object):
    data = {
        "service": "s",
        "observer": "east",
        "regions": [
            {"name": "east", "priority": 1, "gateways": [{"name": "e1", "address": "127.0.0.11"}]},
            {"name": "west", "priority": 2, "gateways": [{"name": "w1", "address": "127.0.0.21"}]},
        ],
        "domains": [{"name": DOMAIN, "checks": [{"kind": "tcp", "port": 80}]}],
        "health": {"rise": 1, "fall": 1},
        **extra,
    }
    return parse_policy(data)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, **extra: object) -> tuple[Coordinator, Clock, ZonefileAdapter]:
    clock = Clock()
    zone = ZonefileAdapter(DOMAIN, tmp_path / "z.zone", "example.com.")
    targets = [StreakKey(DOMAIN, "e1", "tcp:80"), StreakKey(DOMAIN, "w1", "tcp:80")]
    coordinator = Coordinator(
        policy(**extra), SqliteStore(tmp_path / "s.db"), {DOMAIN: [zone]}, clock=clock, targets=targets
    )
    return coordinator, clock, zone


def probe(coordinator: Coordinator, east: bool, west: bool) -> None:
    coordinator.record(
        {
            StreakKey(DOMAIN, "e1", "tcp:80"): ProbeResult(east, 0.001, "east probe"),
            StreakKey(DOMAIN, "w1", "tcp:80"): ProbeResult(west, 0.001, "west probe"),
        }
    )


def test_a_streak_of_a_check_no_longer_in_the_policy_is_ignored(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    # a check on the wrong port failed for ever, then the operator fixed the policy
    store.put_streaks("east", {StreakKey(DOMAIN, "e1", "tcp:81"): Streak(Status.DOWN, 0, 9, 1.0, "refused")})
    store.close()
    coordinator, _, _ = make(tmp_path)
    probe(coordinator, True, True)
    assert coordinator.snapshot().gateways[DOMAIN]["e1"][0] is Status.UP
    assert coordinator.evaluate()[0].decision.state.primary == "east"


def test_decisions_that_keep_traffic_still_are_in_the_history(tmp_path: Path) -> None:
    coordinator, clock, _ = make(tmp_path, election={"hold_down": "1h", "failback": "auto", "failback_after": "1s"})
    probe(coordinator, False, True)
    assert coordinator.evaluate()[0].decision.state.primary == "west"
    probe(coordinator, True, True)
    clock.now += 5
    probe(coordinator, False, False)  # everything down: fail static, and say so once
    for _ in range(3):
        clock.now += 1
        assert coordinator.evaluate()[0].decision.kind == "fail_static"
    kinds = [e.kind for e in coordinator.store.history()]
    assert kinds.count("fail_static") == 1


def test_expiring_an_override_never_deletes_a_newer_one(tmp_path: Path) -> None:
    coordinator, clock, _ = make(tmp_path)
    store = coordinator.store
    old = Override(DOMAIN, "west", "drill", "alice", clock.now, until=clock.now + 10)
    store.set_override(old)
    newer = Override(DOMAIN, "west", "incident", "bob", clock.now + 20, until=None)
    store.set_override(newer)
    assert store.clear_override(DOMAIN, expect=old) is None
    assert store.overrides()[DOMAIN] == newer
    clock.now += 60
    probe(coordinator, True, True)
    coordinator.evaluate()
    assert store.overrides()[DOMAIN] == newer
    assert not [e for e in store.history() if e.kind == "release"]


def test_operator_intent_recorded_after_the_snapshot_still_wins(tmp_path: Path) -> None:
    coordinator, clock, zone = make(tmp_path)
    probe(coordinator, True, True)
    snap = coordinator.snapshot()
    coordinator.store.set_override(Override(DOMAIN, "west", "INC-7", "carol", clock.now))
    outcome = coordinator._evaluate_domain(DOMAIN, snap, apply=True)
    assert outcome.decision.state.primary == "west"
    assert zone.read().addresses == ("127.0.0.21",)


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ({"kind": "rfc2136", "server": "ns1.example.com:53", "zone": "example.com."}, "domains[0].traffic[0].server"),
        ({"kind": "rfc2136", "server": "localhost", "zone": "example.com."}, "domains[0].traffic[0].server"),
    ],
)
def test_dns_servers_must_be_addresses(block: dict[str, object], path: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(domains=[{"name": DOMAIN, "checks": [{"kind": "tcp", "port": 80}], "traffic": [block]}])
    assert [p for p, _ in caught.value.problems] == [path]
    assert "use an IP address" in str(caught.value)


def test_dns_check_server_and_etcd_url_are_checked() -> None:
    with pytest.raises(PolicyError, match=r"domains\[0\]\.checks\[0\]\.server"):
        policy(domains=[{"name": DOMAIN, "checks": [{"kind": "dns", "server": "resolver.local"}]}])
    with pytest.raises(PolicyError, match=r"state\.url"):
        policy(state={"url": "etcd://127.0.0.1:99999/failover"})
    assert policy(state={"url": "etcd://127.0.0.1:2379/failover"}).state.endpoints == ["http://127.0.0.1:2379"]


def test_a_domain_waiting_on_its_provider_does_not_hold_the_others(tmp_path: Path) -> None:
    import threading
    import time

    release = threading.Event()

    class SlowProvider(ZonefileAdapter):
        def apply(self, plan):  # type: ignore[no-untyped-def]
            release.wait(10)  # a Route 53 INSYNC wait, say
            super().apply(plan)

    two = parse_policy(
        {
            "service": "s",
            "observer": "east",
            "regions": [{"name": "east", "gateways": [{"name": "e1", "address": "127.0.0.11"}]}],
            "domains": [
                {"name": "slow.example.com", "checks": [{"kind": "tcp", "port": 80}]},
                {"name": "fast.example.com", "checks": [{"kind": "tcp", "port": 80}]},
            ],
            "health": {"rise": 1, "fall": 1},
        }
    )
    slow = SlowProvider("slow.example.com", tmp_path / "slow.zone", "example.com.")
    fast = ZonefileAdapter("fast.example.com", tmp_path / "fast.zone", "example.com.")
    coordinator = Coordinator(
        two, SqliteStore(tmp_path / "s.db"), {"slow.example.com": [slow], "fast.example.com": [fast]}
    )
    coordinator.record(
        {StreakKey(d, "e1", "tcp:80"): ProbeResult(True, 0.001, "ok") for d in ("slow.example.com", "fast.example.com")}
    )
    worker = threading.Thread(target=coordinator.evaluate)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not (fast.path.exists() and fast.read().addresses == ("127.0.0.11",)):
            assert time.monotonic() < deadline, "the fast domain waited for the slow one"
            time.sleep(0.01)
        assert not slow.path.exists()
    finally:
        release.set()
        worker.join(timeout=10)
    assert slow.read().addresses == ("127.0.0.11",)


def test_without_a_quorum_of_voters_nothing_moves_and_people_are_told(tmp_path: Path) -> None:
    from failover import events as ev

    coordinator, clock, zone = make(tmp_path, observers=["east", "west", "witness"])
    heard: list[ev.Event] = []
    coordinator.events.subscribe(heard.append)
    probe(coordinator, True, True)
    first = coordinator.evaluate()[0].decision
    assert first.kind == "waiting" and "no quorum: 1/3 observers reporting" in first.reason
    assert [type(e) for e in heard if isinstance(e, ev.QuorumLost)] == [ev.QuorumLost]
    # two other voters report: east is elected by the quorum
    seen_up = coordinator.snapshot().health  # this observer's own view, to copy for the others
    own = {(DOMAIN, r): v for r, v in seen_up[DOMAIN].items()}
    own = {k: v.__class__(v.region, Status.UP, 1, 1, clock.now, "1/1 gateways up") for k, v in own.items()}
    for other in ("west", "witness"):
        coordinator.store.put_region_health(other, own, clock.now)
    clock.now += 1
    assert coordinator.evaluate()[0].decision.state.primary == "east"
    assert any(isinstance(e, ev.QuorumRegained) for e in heard)
    # the other voters fall silent and east dies: fail static, said in the sentence
    coordinator.store.put_region_health("west", own, clock.now - 10_000)
    coordinator.store.put_region_health("witness", own, clock.now - 10_000)
    probe(coordinator, False, True)
    held = coordinator.evaluate()[0].decision
    assert held.kind == "fail_static" and held.state.primary == "east" and "no quorum" in held.reason
    assert zone.read().addresses == ("127.0.0.11",)
    assert [e.kind for e in coordinator.store.history()].count("quorum_lost") == 2
