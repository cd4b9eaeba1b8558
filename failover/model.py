"""Plain data shared by every layer: health, engine, store, adapters and the faces.

No I/O, and no behaviour beyond small derived properties. The domain events that flow from
the coordinator to the audit log, the metrics and the alerts live beside this, in
``failover.events``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbeResult:
    """One measurement of one check against one gateway for one domain."""

    ok: bool
    latency: float  # seconds
    reason: str  # one line: "200 in 12ms", "connect refused", "cert expires in 3d"
    warning: str | None = None  # healthy but worth telling (a certificate near expiry)
    cert_days_left: float | None = None  # set by the tls probe: what the warning is about


@dataclass(frozen=True)
class StreakKey:
    domain: str
    gateway: str
    check: str  # a short label such as "http:8080/ready"


@dataclass(frozen=True)
class Streak:
    """Rise/fall state of one check on one gateway for one domain."""

    status: Status = Status.UNKNOWN
    successes: int = 0
    failures: int = 0
    since: float | None = None  # when status last changed
    reason: str = "not probed yet"
    latency: float | None = None
    warning: str | None = None


@dataclass(frozen=True)
class RegionHealth:
    region: str
    status: Status
    up: int  # gateways up
    total: int
    since: float | None  # when this status began
    reason: str  # "2/2 gateways failing (http:8080/ready: 503)"
    quorum: bool = True  # False: too few voters reported for any verdict (UNKNOWN, fail static)
    # each gateway's verdict as this observer sees it: with a shared store a gateway leaves the
    # published answer only when a majority of the voters see it down, not on one view
    gateways: tuple[tuple[str, Status], ...] = ()

    @property
    def healthy(self) -> bool:
        return self.status is Status.UP


@dataclass(frozen=True)
class Override:
    """A manual pin: domain "*" means every domain of the service."""

    domain: str
    region: str
    reason: str
    by: str
    at: float
    until: float | None = None
    force: bool = False

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class Drain:
    region: str
    reason: str
    by: str
    at: float


@dataclass(frozen=True)
class DomainState:
    """What the coordinators agreed for one domain; the store keeps it, the engine evolves it."""

    domain: str
    primary: str | None = None
    secondary: str | None = None
    epoch: int = 0
    changed_at: float | None = None  # last change of primary (any kind: election, override, failover)
    # times of the automatic changes still inside the budget window: the hourly budget counts
    # these, and the hold-down runs from the newest of them (not from changed_at)
    failovers: tuple[float, ...] = field(default_factory=tuple)
    reason: str = ""


class DecisionKind(StrEnum):
    ELECTED = "elected"  # first primary
    FAILOVER = "failover"  # the primary is down or drained: another region took over
    FAILBACK = "failback"  # a better region is back (failback: auto)
    OVERRIDE = "override"  # an operator's pin
    HOLD = "hold"  # a move is due but the hold-down or the hourly budget refuses it
    FAIL_STATIC = "fail_static"  # the primary is down and no region can take over
    WAITING = "waiting"  # no verdict yet: nothing is published
    KEEP = "keep"  # nothing to do

    @property
    def explains_inaction(self) -> bool:
        """Why traffic did NOT move: what an operator looks for in history."""
        return self in (DecisionKind.HOLD, DecisionKind.FAIL_STATIC, DecisionKind.WAITING)


class Rule(StrEnum):
    """The rule that puts or keeps the primary where the decision leaves it (``failover explain``)."""

    OVERRIDE = "override"  # an operator's pin
    HEALTHY = "healthy"  # the primary is healthy and no better region is waiting
    UNDECIDED = "undecided"  # the primary's health is not known (yet): kept, nothing moves
    FAILBACK_WAIT = "failback_wait"  # a better region is back, not healthy for failback_after yet
    FAILBACK_MANUAL = "failback_manual"  # a better region is healthy; failback is manual (promote)
    DRAIN = "drain"  # a better region is drained by an operator
    HOLD_DOWN = "hold_down"  # a move is due; the hold-down since the last automatic change refuses it
    BUDGET = "budget"  # a move is due; the hourly budget of automatic changes is spent
    NO_QUORUM = "no_quorum"  # too few observers report for any verdict: nothing moves automatically
    FAIL_STATIC = "fail_static"  # the primary is down (or drained) and no region can take over
    MOVE = "move"  # the primary moves in this decision (election, failover, failback)
    WAITING = "waiting"  # no verdict yet: nothing is published


@dataclass(frozen=True)
class Why:
    """The structured reason behind a decision: what the sentence says, as data."""

    rule: Rule
    region: str | None = None  # the region the rule is about: the pinned, better, drained or target one
    until: float | None = None  # unix time: the hold-down's end, the override's expiry
    wait: float | None = None  # seconds left before a failback is due
    used: int | None = None  # automatic changes in the last hour (the budget)
    limit: int | None = None  # max_failovers_per_hour


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    reason: str  # one sentence, logged and audited
    state: DomainState
    changed: bool  # the primary moved (epoch bumped)
    why: Why | None = None  # the engine always sets it; a decision read back from elsewhere may not

    @property
    def domain(self) -> str:
        return self.state.domain

    @property
    def primary(self) -> str | None:
        return self.state.primary


def effective_override(overrides: Mapping[str, Override], domain: str, now: float) -> Override | None:
    """The domain's own override beats a service-wide one ("*"); expired ones do not count."""
    for key in (domain, "*"):
        found = overrides.get(key)
        if found is not None and found.active(now):
            return found
    return None


@dataclass(frozen=True)
class Snapshot:
    """One immutable view per evaluation: every decision of that evaluation is made against it."""

    now: float
    gateways: dict[str, dict[str, tuple[Status, str]]]  # domain -> gateway -> (status, reason)
    health: dict[str, dict[str, RegionHealth]]  # domain -> region -> verdict (quorum-merged)
    overrides: dict[str, Override]
    drained: frozenset[str]
    # domain -> region -> observer -> that observer's verdict (the votes behind ``health``)
    votes: dict[str, dict[str, dict[str, Status]]] = field(default_factory=dict)
    voters: tuple[str, ...] = ()  # the configured voters; empty: whoever reports votes (sqlite)
    reporting: tuple[str, ...] = ()  # observers with a fresh report in this snapshot


class AdapterAction(StrEnum):
    NOOP = "noop"  # live already matches the decision
    PLANNED = "planned"  # would change (plan only)
    APPLIED = "applied"  # applied and verified
    SKIPPED = "skipped"  # not ours to change now (not the leader, no healthy gateway)
    LOST_RACE = "lost_race"  # the fencing marker moved: nothing written
    ERROR = "error"  # the provider refused, failed or disagreed on read-back

    @property
    def failed(self) -> bool:
        return self in (AdapterAction.LOST_RACE, AdapterAction.ERROR)


@dataclass(frozen=True)
class AdapterOutcome:
    adapter: str
    action: AdapterAction
    detail: str
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainOutcome:
    decision: Decision
    adapters: list[AdapterOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class AuditEntry:
    at: float
    kind: str
    domain: str | None
    detail: str
    observer: str = ""
    data: dict[str, object] = field(default_factory=dict)


def iso(ts: float | None) -> str | None:
    """Unix time as ISO 8601 UTC (``2026-12-01T19:25:15Z``), as status and history print it."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
