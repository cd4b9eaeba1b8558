"""The audit log as an event subscriber: every domain event becomes the entry the store keeps.

The stored and printed shape (``kind``, ``domain``, ``detail``, ``data``) is the contract of
``failover history --json``; this module is the one place that maps events onto it. The
sentences (``detail``) are for people: ``describe`` words them, and nothing downstream reads
them back.
"""

from __future__ import annotations

from collections.abc import Callable

from failover import events as ev
from failover.model import AuditEntry, iso
from failover.store.abc import Store

NOT_AUDITED = (ev.RegionDown, ev.RegionUp)  # health, not a decision: metrics and alerts carry it


def _kind_and_data(event: ev.Event) -> tuple[str, dict[str, object]]:
    match event:
        case ev.PrimaryChanged():
            data: dict[str, object] = {
                "primary": event.primary,
                "secondary": event.secondary,
                "epoch": event.epoch,
                "previous": event.previous,
            }
            return str(event.kind), data
        case ev.DecisionHeld():
            return str(event.kind), {"primary": event.primary, "epoch": event.epoch}
        case ev.MarkerAdopted():
            return "adopted", {"epoch": event.epoch, "primary": event.primary}
        case ev.OverrideSet():
            data = {"region": event.region, "by": event.by, "until": iso(event.until), "force": event.force}
            return "override", data
        case ev.OverrideReleased():
            return "release", {"region": event.region, "by": event.by}
        case ev.OverrideExpired():
            return "release", {"region": event.region}
        case ev.DrainSet():
            return "drain", {"region": event.region, "by": event.by}
        case ev.DrainCleared():
            return "undrain", {"region": event.region, "by": event.by}
        case ev.ApiCalled():
            data = {
                "by": event.by,
                "peer": event.peer,
                "token": event.token,
                "action": event.action,
                "reason": event.reason,
            }
            return "api", data
        case ev.AdapterApplying():
            return "applying", {"adapter": event.adapter, "epoch": event.epoch}
        case ev.AdapterApplied():
            return "applied", {"adapter": event.adapter, "epoch": event.epoch, "seconds": round(event.seconds, 4)}
        case ev.AdapterFailed():
            return "error", {"adapter": event.adapter}
        case ev.RaceLost():
            return "lost_race", {"adapter": event.adapter}
        case ev.CertificateExpiring() | ev.ProbeWarning():
            return "warning", {"gateway": event.gateway}
        case ev.QuorumLost():
            return "quorum_lost", {"reporting": list(event.reporting), "needed": event.needed}
        case ev.QuorumRegained():
            return "quorum_regained", {"reporting": list(event.reporting)}
        case ev.LeaderChanged():
            return "leader", {"leader": event.leader, "token": event.token}
        case ev.GatewaysDiscovered():
            data = {"region": event.region, "source": event.source, "added": list(event.added)}
            data["removed"] = list(event.removed)
            return "discovered", data
        case ev.DiscoveryFailed():
            return "discovery_failed", {"region": event.region, "source": event.source, "kept": event.kept}
        case ev.DiscoveryRecovered():
            return "discovery_recovered", {"region": event.region, "source": event.source}
    raise TypeError(f"no audit entry for {type(event).__name__}")


def audit_kind(event: ev.Event) -> str | None:
    """The ``kind`` the event is stored under; None for events the audit log does not keep."""
    if isinstance(event, NOT_AUDITED):
        return None
    return _kind_and_data(event)[0]


def entry_for(event: ev.Event) -> AuditEntry | None:
    if isinstance(event, NOT_AUDITED):
        return None
    kind, data = _kind_and_data(event)
    return AuditEntry(event.at, kind, event.domain, ev.describe(event), event.observer, data)


class AuditLog:
    """The required subscriber: writes before anyone else hears of the event; a store failure
    propagates to the publisher, which then does not go on as if it were recorded."""

    def __init__(self, store: Callable[[], Store], persist: bool = True) -> None:
        self._store = store  # read at each write: the daemon's metrics wrap the store after start
        self.persist = persist

    def __call__(self, event: ev.Event) -> None:
        if not self.persist:
            return
        entry = entry_for(event)
        if entry is not None:
            self._store().audit(entry)
