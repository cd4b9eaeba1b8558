"""Domain events: what happened, as data. The one channel from the coordinator and the
operator's operations to the audit log, the metrics and the alerts.

Each event is a frozen dataclass with the facts as typed fields; a consumer matches on the
class and reads fields, and never parses a sentence (``reason`` and ``detail`` are for people).
The audit log turns every event into the entry it stores (``failover.coordinator.audit``), the
metrics count them, the alerts decide which ones to tell people about.

    Event
    ├── PrimaryChanged       a decision moved the primary (elected, failover, failback, override)
    ├── DecisionHeld         a decision explains why traffic did NOT move (hold, fail static, waiting)
    ├── MarkerAdopted        a newer marker written by a coordinator sharing no store was adopted
    ├── RegionDown / RegionUp   the quorum verdict on a region changed (not audited: it is health)
    ├── QuorumLost / QuorumRegained   fewer fresh reports than a majority of the voters, and back
    ├── LeaderChanged        this process took or lost the leadership
    ├── OverrideSet / OverrideReleased / OverrideExpired
    ├── DrainSet / DrainCleared
    ├── ApiCalled            an accepted admin API call, with who and why
    ├── AdapterApplying / AdapterApplied / AdapterFailed / RaceLost
    ├── CertificateExpiring  a gateway's certificate is inside ``warn_before``
    ├── ProbeWarning         any other warning a passing probe carried
    ├── GatewaysDiscovered   a region's ``gateways_from`` answer added or retired gateways
    └── DiscoveryFailed / DiscoveryRecovered   a region's ``gateways_from`` cannot be resolved
                             (the last known gateways stay), and answers again
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from failover.model import DecisionKind

log = logging.getLogger("failover.events")


@dataclass(frozen=True, kw_only=True)
class Event:
    at: float
    observer: str
    domain: str | None = None  # None: every domain of the service (or none in particular)


@dataclass(frozen=True, kw_only=True)
class PrimaryChanged(Event):
    kind: DecisionKind  # elected | failover | failback | override
    previous: str | None
    primary: str | None
    secondary: str | None
    epoch: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class DecisionHeld(Event):
    kind: DecisionKind  # hold | fail_static | waiting
    primary: str | None
    epoch: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class MarkerAdopted(Event):
    primary: str
    epoch: int
    written_by: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class RegionDown(Event):
    region: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class RegionUp(Event):
    region: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class QuorumLost(Event):
    """Fewer fresh reports than a majority of the voters: nothing moves automatically."""

    reporting: tuple[str, ...]
    voters: tuple[str, ...]
    needed: int


@dataclass(frozen=True, kw_only=True)
class QuorumRegained(Event):
    reporting: tuple[str, ...]
    voters: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LeaderChanged(Event):
    """This process became the leader (``token`` set) or stopped leading (``token`` None)."""

    leader: str | None
    token: int | None


@dataclass(frozen=True, kw_only=True)
class OverrideSet(Event):
    region: str
    by: str
    reason: str
    until: float | None
    force: bool


@dataclass(frozen=True, kw_only=True)
class OverrideReleased(Event):
    region: str
    by: str


@dataclass(frozen=True, kw_only=True)
class OverrideExpired(Event):
    region: str
    set_by: str  # who had set it


@dataclass(frozen=True, kw_only=True)
class DrainSet(Event):
    region: str
    by: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class DrainCleared(Event):
    region: str
    by: str


@dataclass(frozen=True, kw_only=True)
class ApiCalled(Event):
    action: str
    by: str
    peer: str
    token: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class AdapterApplying(Event):
    adapter: str
    epoch: int
    changes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AdapterApplied(Event):
    adapter: str
    epoch: int
    changes: tuple[str, ...]
    seconds: float  # apply plus verify


@dataclass(frozen=True, kw_only=True)
class AdapterFailed(Event):
    adapter: str
    error: str


@dataclass(frozen=True, kw_only=True)
class RaceLost(Event):
    adapter: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class CertificateExpiring(Event):
    gateway: str
    check: str
    days_left: float
    detail: str


@dataclass(frozen=True, kw_only=True)
class ProbeWarning(Event):
    gateway: str
    check: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class GatewaysDiscovered(Event):
    region: str
    source: str  # the DNS name resolved
    added: tuple[str, ...]  # gateway names
    removed: tuple[str, ...]  # gone from the answers for longer than the grace time
    gateways: int  # discovered gateways now


@dataclass(frozen=True, kw_only=True)
class DiscoveryFailed(Event):
    region: str
    source: str
    error: str
    kept: int  # discovered gateways kept from the last answer (0: none known yet)


@dataclass(frozen=True, kw_only=True)
class DiscoveryRecovered(Event):
    region: str
    source: str
    gateways: int


def describe(event: Event) -> str:
    """The one sentence for people: the audit entry's ``detail``, an alert's reason. Nothing
    reads it back, so rewording it changes no behaviour."""
    match event:
        case PrimaryChanged() | DecisionHeld() | MarkerAdopted():
            return event.reason
        case OverrideSet():
            return f"{event.by} promoted {event.region}: {event.reason}"
        case OverrideReleased():
            return f"{event.by} released the override to {event.region}"
        case OverrideExpired():
            return f"override to {event.region} by {event.set_by} expired"
        case DrainSet():
            return f"{event.by} drained {event.region}: {event.reason}"
        case DrainCleared():
            return f"{event.by} returned {event.region} to election"
        case ApiCalled():
            return f"{event.by} called POST /v1/{event.action}: {event.reason}"
        case AdapterApplying():
            return "; ".join(event.changes)
        case AdapterApplied():
            return f"{event.adapter}: " + "; ".join(event.changes)
        case AdapterFailed():
            return event.error
        case RaceLost():
            return event.detail
        case CertificateExpiring() | ProbeWarning():
            return event.detail
        case QuorumLost():
            return (
                f"no quorum: {len(event.reporting)}/{len(event.voters)} observers reporting "
                f"({', '.join(event.reporting) or 'none'}), {event.needed} needed: nothing moves automatically"
            )
        case QuorumRegained():
            return f"quorum back: {len(event.reporting)}/{len(event.voters)} observers reporting"
        case LeaderChanged():
            return (
                f"{event.observer} leads (fencing token {event.token})"
                if event.token is not None
                else f"{event.observer} no longer leads"
            )
        case RegionDown() | RegionUp():
            return f"{event.region}: {event.reason}"
        case GatewaysDiscovered():
            change = [f"+{name}" for name in event.added] + [f"-{name}" for name in event.removed]
            return f"{event.region}: {event.source} now gives {event.gateways} gateways ({', '.join(change)})"
        case DiscoveryFailed():
            kept = f"keeping the last {event.kept} gateways" if event.kept else "no gateway known yet: region unknown"
            return f"{event.region}: cannot resolve {event.source} ({event.error}); {kept}"
        case DiscoveryRecovered():
            return f"{event.region}: {event.source} answers again ({event.gateways} gateways)"
    raise TypeError(f"no audit sentence for {type(event).__name__}")


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out, in the publishing thread.

    A *required* subscriber (the audit log) runs first and its exception propagates: an event
    that could not be recorded must stop what was about to happen. Every other subscriber
    (metrics, alerts, the demo's view) is isolated: its failure is logged and never stops a
    failover.
    """

    def __init__(self) -> None:
        self._required: list[Subscriber] = []
        self._optional: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber, *, required: bool = False) -> None:
        with self._lock:
            (self._required if required else self._optional).append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            for group in (self._required, self._optional):
                if subscriber in group:
                    group.remove(subscriber)

    def publish(self, event: Event) -> None:
        with self._lock:
            required, optional = list(self._required), list(self._optional)
        for subscriber in required:
            subscriber(event)
        for subscriber in optional:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber failed on %s", type(event).__name__)
