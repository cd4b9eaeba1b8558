"""Plain data shared by health, engine, store and adapters. No behaviour, no I/O."""

from __future__ import annotations

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
    changed_at: float | None = None  # last change of primary: hold-down counts from here
    failovers: tuple[float, ...] = field(default_factory=tuple)  # automatic changes, last hour
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    kind: str  # elected | failover | failback | override | hold | fail_static | waiting | keep
    reason: str  # one sentence, logged and audited
    state: DomainState
    changed: bool  # the primary moved (epoch bumped)

    @property
    def domain(self) -> str:
        return self.state.domain

    @property
    def primary(self) -> str | None:
        return self.state.primary


@dataclass(frozen=True)
class AuditEntry:
    at: float
    kind: str
    domain: str | None
    detail: str
    observer: str = ""
    data: dict[str, object] = field(default_factory=dict)
