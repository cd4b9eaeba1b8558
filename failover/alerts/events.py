"""From what the coordinator records to what people are told.

``Notifier`` turns three sources into ``Event`` s and hands them to ``publish``:

* audit entries (a coordinator listener, any thread): decisions that moved the primary
  (failover, failback, elected, override), override released or expired, drain, undrain,
  adapter errors, lost races, certificate warnings;
* operator operations (``with notifier.operation(...)``, around an ``operations.*`` call):
  everything audited inside becomes ONE event — the override and the failover it caused,
  what was applied and verified, what failed — instead of one message per audit entry;
* the state after each daemon evaluation (``observe``): region down/up from the quorum
  verdicts, and primary changes made by another process sharing the store (the CLI, another
  coordinator), which this process did not audit itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from failover.alerts.abc import Event, Severity
from failover.engine import effective_override
from failover.model import AuditEntry, Status
from failover.policy import AlertEvent, Policy

if TYPE_CHECKING:
    from failover.coordinator import DomainOutcome, Snapshot

DECISIONS = ("elected", "failover", "failback", "override")
OPERATION_EVENTS: dict[str, AlertEvent] = {
    "promote": "override_set",
    "release": "override_released",
    "drain": "drain",
    "undrain": "undrain",
}
INTENTS = ("override", "release", "drain", "undrain")


@dataclass
class _Operation:
    action: str
    by: str
    reason: str
    region: str | None
    domain: str | None
    entries: list[AuditEntry] = field(default_factory=list)


_current: contextvars.ContextVar[_Operation | None] = contextvars.ContextVar("failover_operation", default=None)


class Notifier:
    def __init__(self, policy: Policy, publish: Callable[[Event], None]) -> None:
        self.policy = policy
        self.publish = publish
        self._lock = threading.Lock()
        self._epochs: dict[str, int] = {}  # domain -> newest epoch this process has told about
        self._primaries: dict[str, str | None] = {}
        self._regions: dict[tuple[str, str], Status] = {}

    def _event(self, kind: AlertEvent, summary: str, at: float, **fields: object) -> Event:
        return Event(kind, summary, self.policy.service, self.policy.observer, at, **fields)  # type: ignore[arg-type]

    # -- audit entries ------------------------------------------------------------------------
    def on_audit(self, entry: AuditEntry) -> None:
        """Coordinator listener. Inside an operation the entry is collected, not sent."""
        self._track(entry)
        operation = _current.get()
        if operation is not None:
            operation.entries.append(entry)
            return
        event = self.event_for(entry)
        if event is not None:
            self.publish(event)

    def _track(self, entry: AuditEntry) -> None:
        epoch = entry.data.get("epoch")
        if entry.domain is None or not isinstance(epoch, int):
            return
        if (entry.kind in DECISIONS and "previous" in entry.data) or entry.kind == "adopted":
            with self._lock:
                if epoch >= self._epochs.get(entry.domain, -1):
                    self._epochs[entry.domain] = epoch
                    primary = entry.data.get("primary")
                    self._primaries[entry.domain] = primary if isinstance(primary, str) else None

    def event_for(self, entry: AuditEntry) -> Event | None:
        data = entry.data
        domain = entry.domain
        scope = domain or "*"
        region = data.get("region") if isinstance(data.get("region"), str) else None
        by = data.get("by") if isinstance(data.get("by"), str) else None
        if entry.kind in DECISIONS and "previous" in data:
            previous = data.get("previous") if isinstance(data.get("previous"), str) else None
            primary = data.get("primary") if isinstance(data.get("primary"), str) else None
            epoch = data.get("epoch")
            moved = f"{previous} → {primary}" if previous else f"{primary}"
            common = {
                "domain": domain,
                "from_region": previous,
                "to_region": primary,
                "reason": entry.detail,
                "key": f"{entry.kind}:{scope}:{epoch}",
            }
            if entry.kind == "failover":
                return self._event("failover", f"{domain} {moved}", entry.at, severity="critical", **common)
            if entry.kind == "failback":
                return self._event("failback", f"{domain} {moved}", entry.at, severity="warning", **common)
            if entry.kind == "elected":
                return self._event("elected", f"{primary} is primary for {domain}", entry.at, **common)
            return self._event("override_set", f"{domain} {moved}", entry.at, severity="warning", **common)
        if entry.kind == "override":
            return self._event(
                "override_set",
                f"{region} pinned for {domain or 'all domains'}",
                entry.at,
                domain=domain,
                region=region,
                to_region=region,
                by=by,
                reason=entry.detail,
                severity="warning",
                key=f"override_set:{scope}:{region}:{entry.at}",
            )
        if entry.kind == "release":
            expired = by is None
            kind: AlertEvent = "override_expired" if expired else "override_released"
            return self._event(
                kind,
                f"override to {region} for {domain or 'all domains'} {'expired' if expired else 'released'}",
                entry.at,
                domain=domain,
                region=region,
                by=by,
                reason=entry.detail,
                key=f"{kind}:{scope}:{region}:{entry.at}",
            )
        if entry.kind in ("drain", "undrain"):
            drain_kind: AlertEvent = "drain" if entry.kind == "drain" else "undrain"
            return self._event(
                drain_kind,
                f"{region} {'drained' if entry.kind == 'drain' else 'back in election'}",
                entry.at,
                region=region,
                by=by,
                reason=entry.detail,
                severity="warning" if entry.kind == "drain" else "info",
                key=f"{entry.kind}:{region}:{entry.at}",
            )
        if entry.kind in ("error", "lost_race") and "adapter" in data:
            adapter = str(data["adapter"])
            if entry.kind == "error":
                return self._event(
                    "adapter_error",
                    f"{adapter} failed for {domain}",
                    entry.at,
                    domain=domain,
                    reason=entry.detail,
                    severity="critical",
                    key=f"adapter_error:{scope}:{adapter}",
                )
            return self._event(
                "lost_race",
                f"{adapter} for {domain}: another coordinator changed it first",
                entry.at,
                domain=domain,
                reason=entry.detail,
                severity="warning",
                key=f"lost_race:{scope}:{adapter}",
            )
        if entry.kind == "warning" and "certificate" in entry.detail:
            gateway = str(data.get("gateway", ""))
            return self._event(
                "certificate_expiring",
                f"certificate of {domain} on {gateway} expires soon",
                entry.at,
                domain=domain,
                reason=entry.detail,
                severity="warning",
                key=f"certificate_expiring:{scope}:{gateway}",
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
        intents = [e for e in op.entries if e.kind in INTENTS and "previous" not in e.data]
        changes = [e for e in op.entries if e.kind in DECISIONS and "previous" in e.data]
        if not intents and not changes:
            return None  # nothing was recorded (refused, or nothing to release)
        applied = [e for e in op.entries if e.kind == "applied"]
        failed = [e for e in op.entries if e.kind in ("error", "lost_race")]
        moves = {(e.data.get("previous"), e.data.get("primary")) for e in changes}
        details = [
            f"{e.domain}: {e.data.get('previous') or '-'} → {e.data.get('primary')} (epoch {e.data.get('epoch')})"
            for e in changes
        ]
        details += [f"{e.domain}: {e.data.get('adapter')} applied and verified" for e in applied]
        details += [f"{e.domain}: {e.data.get('adapter')} FAILED: {e.detail}" for e in failed]
        from_region = to_region = None
        if len(moves) == 1:
            previous, primary = next(iter(moves))
            from_region = previous if isinstance(previous, str) else None
            to_region = primary if isinstance(primary, str) else None
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
        at = op.entries[0].at if op.entries else 0.0
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
        for domain, regions in snap.health.items():
            primary = self._primaries.get(domain)
            for region, verdict in regions.items():
                before = self._regions.get((domain, region))
                now = verdict.status
                self._regions[(domain, region)] = now
                if now is Status.DOWN and before is not Status.DOWN:
                    self.publish(
                        self._event(
                            "region_down",
                            f"{region} is down for {domain}",
                            snap.now,
                            domain=domain,
                            region=region,
                            reason=verdict.reason,
                            severity="critical" if region == primary else "warning",
                            key=f"region_down:{domain}:{region}",
                            resets=(f"region_up:{domain}:{region}",),
                        )
                    )
                elif now is Status.UP and before is Status.DOWN:
                    self.publish(
                        self._event(
                            "region_up",
                            f"{region} is up again for {domain}",
                            snap.now,
                            domain=domain,
                            region=region,
                            reason=verdict.reason,
                            key=f"region_up:{domain}:{region}",
                            resets=(f"region_down:{domain}:{region}",),
                        )
                    )
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
