"""From what the coordinator publishes to what people are told.

``Notifier`` subscribes to the domain events (``failover.events``) and hands alert ``Event`` s
to ``publish``. It matches on the event's class and reads its fields; it never parses a
sentence (``reason`` and ``detail`` are passed through for people to read).

* single events (any thread): a primary moved (failover, failback, elected, override), an
  override released or expired, a drain or undrain, an adapter error, a lost race, a region
  down or up again, a certificate expiring, a region's gateway discovery failing (its last set
  kept) and answering again;
* operator operations (``with notifier.operation(...)``, around an ``operations.*`` call):
  everything published inside becomes ONE alert — the override and the failover it caused,
  what was applied and verified, what failed — instead of one message per event;
* the outcomes after each daemon evaluation (``observe``): primary changes made by another
  process sharing the store (the CLI, another coordinator), which this process did not see
  as events of its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from failover import events as ev
from failover.alerts.abc import Event, Severity
from failover.model import DecisionKind, DomainOutcome, Snapshot, effective_override
from failover.policy import AlertEvent, Policy

OPERATION_EVENTS: dict[str, AlertEvent] = {
    "promote": "override_set",
    "release": "override_released",
    "drain": "drain",
    "undrain": "undrain",
}
INTENTS = (ev.OverrideSet, ev.OverrideReleased, ev.DrainSet, ev.DrainCleared)


@dataclass
class _Operation:
    action: str
    by: str
    reason: str
    region: str | None
    domain: str | None
    events: list[ev.Event] = field(default_factory=list)


_current: contextvars.ContextVar[_Operation | None] = contextvars.ContextVar("failover_operation", default=None)


class Notifier:
    def __init__(self, policy: Policy, publish: Callable[[Event], None]) -> None:
        self.policy = policy
        self.publish = publish
        self._lock = threading.Lock()
        self._epochs: dict[str, int] = {}  # domain -> newest epoch this process has told about
        self._primaries: dict[str, str | None] = {}
        self._undiscovered: set[str] = set()  # regions told as failing discovery, until it recovers

    def _event(self, kind: AlertEvent, summary: str, at: float, **fields: object) -> Event:
        return Event(kind, summary, self.policy.service, self.policy.observer, at, **fields)  # type: ignore[arg-type]

    # -- domain events --------------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        """Event subscriber. Inside an operation the event is collected, not sent."""
        self._track(event)
        operation = _current.get()
        if operation is not None:
            operation.events.append(event)
            return
        alert = self.alert_for(event)
        if alert is not None:
            self.publish(alert)

    def _track(self, event: ev.Event) -> None:
        if isinstance(event, ev.DiscoveryFailed | ev.DiscoveryRecovered):
            with self._lock:
                if isinstance(event, ev.DiscoveryFailed):
                    self._undiscovered.add(event.region)
                else:
                    self._undiscovered.discard(event.region)
            return
        if event.domain is None or not isinstance(event, ev.PrimaryChanged | ev.MarkerAdopted):
            return
        with self._lock:
            if event.epoch >= self._epochs.get(event.domain, -1):
                self._epochs[event.domain] = event.epoch
                self._primaries[event.domain] = event.primary

    def alert_for(self, event: ev.Event) -> Event | None:
        domain = event.domain
        scope = domain or "*"
        match event:
            case ev.PrimaryChanged():
                moved = f"{event.previous} → {event.primary}" if event.previous else f"{event.primary}"
                common = {
                    "domain": domain,
                    "from_region": event.previous,
                    "to_region": event.primary,
                    "reason": event.reason,
                    "key": f"{event.kind}:{scope}:{event.epoch}",
                }
                if event.kind is DecisionKind.FAILOVER:
                    return self._event("failover", f"{domain} {moved}", event.at, severity="critical", **common)
                if event.kind is DecisionKind.FAILBACK:
                    return self._event("failback", f"{domain} {moved}", event.at, severity="warning", **common)
                if event.kind is DecisionKind.ELECTED:
                    return self._event("elected", f"{event.primary} is primary for {domain}", event.at, **common)
                return self._event("override_set", f"{domain} {moved}", event.at, severity="warning", **common)
            case ev.OverrideSet():
                return self._event(
                    "override_set",
                    f"{event.region} pinned for {domain or 'all domains'}",
                    event.at,
                    domain=domain,
                    region=event.region,
                    to_region=event.region,
                    by=event.by,
                    reason=event.reason,
                    severity="warning",
                    key=f"override_set:{scope}:{event.region}:{event.at}",
                )
            case ev.OverrideReleased() | ev.OverrideExpired():
                expired = isinstance(event, ev.OverrideExpired)
                kind: AlertEvent = "override_expired" if expired else "override_released"
                return self._event(
                    kind,
                    f"override to {event.region} for {domain or 'all domains'} {'expired' if expired else 'released'}",
                    event.at,
                    domain=domain,
                    region=event.region,
                    by=None if isinstance(event, ev.OverrideExpired) else event.by,
                    reason=ev.describe(event),
                    key=f"{kind}:{scope}:{event.region}:{event.at}",
                )
            case ev.DrainSet() | ev.DrainCleared():
                drained = isinstance(event, ev.DrainSet)
                drain_kind: AlertEvent = "drain" if drained else "undrain"
                return self._event(
                    drain_kind,
                    f"{event.region} {'drained' if drained else 'back in election'}",
                    event.at,
                    region=event.region,
                    by=event.by,
                    reason=ev.describe(event),
                    severity="warning" if drained else "info",
                    key=f"{drain_kind}:{event.region}:{event.at}",
                )
            case ev.AdapterFailed():
                return self._event(
                    "adapter_error",
                    f"{event.adapter} failed for {domain}",
                    event.at,
                    domain=domain,
                    reason=event.error,
                    severity="critical",
                    key=f"adapter_error:{scope}:{event.adapter}",
                )
            case ev.RaceLost():
                return self._event(
                    "lost_race",
                    f"{event.adapter} for {domain}: another coordinator changed it first",
                    event.at,
                    domain=domain,
                    reason=event.detail,
                    severity="warning",
                    key=f"lost_race:{scope}:{event.adapter}",
                )
            case ev.CertificateExpiring():
                return self._event(
                    "certificate_expiring",
                    f"certificate of {domain} on {event.gateway} expires soon",
                    event.at,
                    domain=domain,
                    reason=event.detail,
                    severity="warning",
                    key=f"certificate_expiring:{scope}:{event.gateway}",
                )
            case ev.QuorumLost():
                return self._event(
                    "quorum_lost",
                    f"only {len(event.reporting)}/{len(event.voters)} observers reporting: nothing moves automatically",
                    event.at,
                    reason=ev.describe(event),
                    severity="critical",
                    key="quorum_lost",
                    resets=("quorum_regained",),
                )
            case ev.LeaderChanged():
                return self._event(
                    "leader_changed",
                    ev.describe(event),
                    event.at,
                    reason=ev.describe(event),
                    severity="info",
                    key=f"leader_changed:{event.observer}:{event.token}",
                )
            case ev.RegionDown():
                return self._event(
                    "region_down",
                    f"{event.region} is down for {domain}",
                    event.at,
                    domain=domain,
                    region=event.region,
                    reason=event.reason,
                    severity="critical" if event.region == self._primaries.get(scope) else "warning",
                    key=f"region_down:{domain}:{event.region}",
                    resets=(f"region_up:{domain}:{event.region}",),
                )
            case ev.DiscoveryFailed():
                return self._event(
                    "discovery_failed",
                    f"cannot discover the gateways of {event.region}",
                    event.at,
                    region=event.region,
                    reason=ev.describe(event),
                    severity="critical" if not event.kept else "warning",
                    key=f"discovery_failed:{event.region}",
                    resets=(f"discovery_recovered:{event.region}",),
                )
            case ev.DiscoveryRecovered():
                return self._event(
                    "discovery_recovered",
                    f"gateways of {event.region} are discovered again",
                    event.at,
                    region=event.region,
                    reason=ev.describe(event),
                    key=f"discovery_recovered:{event.region}",
                    resets=(f"discovery_failed:{event.region}",),
                )
            case ev.RegionUp():
                return self._event(
                    "region_up",
                    f"{event.region} is up again for {domain}",
                    event.at,
                    domain=domain,
                    region=event.region,
                    reason=event.reason,
                    key=f"region_up:{domain}:{event.region}",
                    resets=(f"region_down:{domain}:{event.region}",),
                )
        return None

    # -- operator operations -------------------------------------------------------------------
    @contextlib.contextmanager
    def operation(
        self, action: str, by: str, reason: str, region: str | None = None, domain: str | None = None
    ) -> Iterator[None]:
        """Collect what the operation audits and send it as one event when it ends (also when it
        fails after changing something: the event then says what failed)."""
        operation = _Operation(action, by, reason, region, domain)
        token = _current.set(operation)
        try:
            yield
        finally:
            _current.reset(token)
            event = self.operation_event(operation)
            if event is not None:
                self.publish(event)

    def operation_event(self, op: _Operation) -> Event | None:
        intents = [e for e in op.events if isinstance(e, INTENTS)]
        changes = [e for e in op.events if isinstance(e, ev.PrimaryChanged)]
        if not intents and not changes:
            return None  # nothing was recorded (refused, or nothing to release)
        applied = [e for e in op.events if isinstance(e, ev.AdapterApplied)]
        failed = [e for e in op.events if isinstance(e, ev.AdapterFailed | ev.RaceLost)]
        moves = {(e.previous, e.primary) for e in changes}
        details = [f"{e.domain}: {e.previous or '-'} → {e.primary} (epoch {e.epoch})" for e in changes]
        details += [f"{e.domain}: {e.adapter} applied and verified" for e in applied]
        details += [f"{e.domain}: {e.adapter} FAILED: {ev.describe(e)}" for e in failed]
        from_region = to_region = None
        if len(moves) == 1:
            from_region, to_region = next(iter(moves))
        where = op.domain or "all domains"
        kind = OPERATION_EVENTS.get(op.action, "override_set")
        if op.action == "promote":
            summary = f"{op.region} promoted for {where}"
        elif op.action == "release":
            summary = f"override released for {where}"
        elif op.action == "drain":
            summary = f"{op.region} drained"
        else:
            summary = f"{op.region} back in election"
        if changes and to_region:
            summary += f": {from_region or '-'} → {to_region}"
        elif changes:
            summary += f": primary moved for {len(changes)} domains"
        else:
            summary += ": primary unchanged"
        severity: Severity = "critical" if failed else ("warning" if op.action in ("promote", "drain") else "info")
        at = op.events[0].at if op.events else 0.0
        return self._event(
            kind,
            summary,
            at,
            domain=op.domain,
            region=op.region,
            from_region=from_region,
            to_region=to_region,
            reason=op.reason,
            by=op.by,
            severity=severity,
            details=tuple(details),
            key=f"{op.action}:{op.domain or '*'}:{op.region}:{at}",
        )

    # -- after each evaluation --------------------------------------------------------------------
    def observe(self, outcomes: Sequence[DomainOutcome], snap: Snapshot) -> None:
        """Primary changes recorded by another process sharing the store: this process sees
        them only as a newer epoch in its own evaluation's outcome. And a region still without
        any discovered gateway: its DiscoveryFailed was raised at start, before anyone listened."""
        self._tell_undiscovered(snap.now)
        for outcome in outcomes:
            state = outcome.decision.state
            with self._lock:
                told = self._epochs.get(state.domain)
                before_primary = self._primaries.get(state.domain)
                if told is None or state.epoch > told:
                    self._epochs[state.domain] = state.epoch
                    self._primaries[state.domain] = state.primary
            if told is None or state.epoch <= told or state.primary == before_primary:
                continue  # first sight (a restart), or nothing new
            override = effective_override(snap.overrides, state.domain, snap.now)
            elsewhere = "by another process sharing the store (the CLI or another coordinator)"
            if override is not None and override.region == state.primary:
                event = self._event(
                    "override_set",
                    f"{state.domain} {before_primary or '-'} → {state.primary}",
                    snap.now,
                    domain=state.domain,
                    from_region=before_primary,
                    to_region=state.primary,
                    by=override.by,
                    reason=override.reason,
                    severity="warning",
                    details=(f"changed {elsewhere}",),
                    key=f"override_set:{state.domain}:{state.epoch}",
                )
            else:
                event = self._event(
                    "failover",
                    f"{state.domain} {before_primary or '-'} → {state.primary}",
                    snap.now,
                    domain=state.domain,
                    from_region=before_primary,
                    to_region=state.primary,
                    reason=state.reason or outcome.decision.reason,
                    severity="critical",
                    details=(f"changed {elsewhere}",),
                    key=f"failover:{state.domain}:{state.epoch}",
                )
            self.publish(event)

    def _tell_undiscovered(self, now: float) -> None:
        for region in self.policy.regions:
            if region.gateways_from is None or region.gateways:
                continue
            with self._lock:
                if region.name in self._undiscovered:
                    continue
                self._undiscovered.add(region.name)
            failed = ev.DiscoveryFailed(
                at=now,
                observer=self.policy.observer,
                region=region.name,
                source=region.gateways_from.dns,
                error="no answer since start",
                kept=0,
            )
            alert = self.alert_for(failed)
            if alert is not None:
                self.publish(alert)
