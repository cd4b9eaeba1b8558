"""Alerts, metrics and the audit log subscribe to typed events: rewording every sentence changes
no alert and no metric. One scenario runs twice over a real sqlite store and zone file, once as
written and once with every reason sentence reworded (the engine's decisions and the events'
formatter), and what comes out is compared."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from failover import engine, events, operations
from failover.adapters.abc import Live, Plan
from failover.adapters.zonefile import ZonefileAdapter
from failover.alerts import Event, Notifier
from failover.coordinator import Coordinator
from failover.errors import AdapterError
from failover.metrics import Metrics
from failover.model import Override, ProbeResult, StreakKey
from failover.policy import parse_policy
from failover.store.sqlite import SqliteStore

DOMAIN = "api.example.com"
E1, W1, TLS = StreakKey(DOMAIN, "e1", "tcp:80"), StreakKey(DOMAIN, "w1", "tcp:80"), StreakKey(DOMAIN, "e1", "tls:443")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class BrokenZone(ZonefileAdapter):
    """A second adapter whose provider refuses its first read."""

    failures_left = 1

    def read(self) -> Live:
        if self.failures_left:
            self.failures_left -= 1
            raise AdapterError(f"{self.name}: provider unreachable")
        return super().read()


class RacingZone(ZonefileAdapter):
    """A zone file that another coordinator rewrites once, between our read and our apply."""

    race_once = False

    def apply(self, plan: Plan) -> None:
        if self.race_once:
            self.race_once = False
            twin = ZonefileAdapter(self.domain, self.path, str(self.origin))
            theirs = replace(plan.desired, by="twin", at=plan.desired.at + 1)
            twin.apply(twin.plan(twin.read(), theirs))
        super().apply(plan)


def scenario(tmp_path: Path) -> tuple[list[Event], dict[str, float], list[tuple[str, str]]]:
    policy = parse_policy(
        {
            "service": "s",
            "observer": "east",
            "regions": [
                {"name": "east", "priority": 1, "gateways": [{"name": "e1", "address": "127.0.0.11"}]},
                {"name": "west", "priority": 2, "gateways": [{"name": "w1", "address": "127.0.0.21"}]},
            ],
            "domains": [{"name": DOMAIN, "checks": [{"kind": "tcp", "port": 80}]}],
            "health": {"rise": 1, "fall": 1},
            "election": {"hold_down": "0s"},
        }
    )
    clock = Clock()
    zone = RacingZone(DOMAIN, tmp_path / "z.zone", "example.com.")
    broken = BrokenZone(DOMAIN, tmp_path / "other.zone", "example.com.")
    store = SqliteStore(tmp_path / "s.db")
    coordinator = Coordinator(policy, store, {DOMAIN: [zone, broken]}, clock=clock, targets=[E1, W1, TLS])
    alerts: list[Event] = []
    notifier = Notifier(policy, alerts.append)
    metrics = Metrics(policy)
    coordinator.events.subscribe(notifier.on_event)
    coordinator.events.subscribe(metrics.on_event)

    def probe(east: bool, west: bool) -> None:
        clock.now += 10
        coordinator.record({E1: ProbeResult(east, 0.001, "e"), W1: ProbeResult(west, 0.001, "w")})
        notifier.observe(coordinator.evaluate(), coordinator.snapshot())

    probe(True, True)  # elected east; the broken adapter fails
    coordinator.record({TLS: ProbeResult(True, 0.01, "tls ok", "expires soon", cert_days_left=3.0)})
    zone.race_once = True
    probe(False, True)  # east down: failover to west, which another coordinator publishes first
    probe(True, True)  # east up again (failback is manual)
    with notifier.operation("promote", "alice", "INC-1", "east", None):
        operations.promote(coordinator, "east", "INC-1", "alice")
    with notifier.operation("release", "alice", "done", None, None):
        operations.release(coordinator, "alice")
    with notifier.operation("drain", "bob", "patching", "west", None):
        operations.drain(coordinator, "west", "bob", "patching")
    with notifier.operation("undrain", "bob", "done", "west", None):
        operations.undrain(coordinator, "west", "bob")
    store.set_override(Override(DOMAIN, "east", "short pin", "carol", clock.now, until=clock.now + 5))
    clock.now += 60
    coordinator.evaluate()  # the pin expired
    counters = {}
    for family in metrics.registry.collect():
        if family.name.startswith(
            (
                "failover_primary_changes",
                "failover_adapter_changes",
                "failover_adapter_errors",
                "failover_audit_entries",
            )
        ):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counters[f"{sample.name}{sorted(sample.labels.items())}"] = sample.value
    history = [(e.kind, e.detail) for e in store.history()]
    store.close()
    return alerts, counters, history


def facts(alert: Event) -> tuple[Any, ...]:
    """What an alert says apart from its wording."""
    return (
        alert.kind,
        alert.key,
        alert.severity,
        alert.domain,
        alert.region,
        alert.from_region,
        alert.to_region,
        alert.by,
        len(alert.details),
    )


def test_rewording_every_sentence_changes_no_alert_and_no_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts, counters, history = scenario(tmp_path / "plain")
    kinds = [a.kind for a in alerts]
    for expected in (
        "elected",
        "lost_race",
        "adapter_error",
        "certificate_expiring",
        "region_down",
        "failover",
        "region_up",
        "override_set",
        "override_released",
        "drain",
        "undrain",
        "override_expired",
    ):
        assert expected in kinds, f"{expected} missing from {kinds}"
    assert counters, "no counter moved"

    decide = engine.decide

    def reworded_decide(*args: Any, **kwargs: Any) -> Any:
        decision = decide(*args, **kwargs)
        state = decision.state.__class__(**{**decision.state.__dict__, "reason": "REWORDED"})
        return decision.__class__(decision.kind, "REWORDED", state, decision.changed)

    monkeypatch.setattr(engine, "decide", reworded_decide)
    monkeypatch.setattr(events, "describe", lambda event: "REWORDED")
    again, counters_again, history_again = scenario(tmp_path / "reworded")

    assert [facts(a) for a in again] == [facts(a) for a in alerts]
    assert counters_again == counters
    assert [kind for kind, _ in history_again] == [kind for kind, _ in history]
    # the rewording took effect: the same entries now carry other sentences
    assert {detail for _, detail in history_again} == {"REWORDED"}
    assert {detail for _, detail in history} != {"REWORDED"}
