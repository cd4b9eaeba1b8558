"""The traffic adapter interface: read → plan → apply (fenced) → verify.

An adapter owns one DNS name (or one Elastic IP) for one domain at one provider. It works like
a controller: it reads what is live, computes the difference to what the decision wants, sends
only that difference, then reads back.

Contract every backend keeps:

* ``read()`` is side-effect free and returns the live records together with the ownership
  marker exactly as stored (``Live.marker_text``). That text is the fencing token.
* ``plan()`` is pure. An empty plan means the live state already matches: ``apply`` is then
  never called, so running the same decision twice sends no change request (idempotence).
  A live marker with a *newer* epoch than ours means another coordinator decided after us:
  ``plan()`` raises ``LostRace`` instead of planning to overwrite it.
* ``apply(plan)`` changes the records and the marker in ONE atomic provider request that is
  conditional on the marker still being ``plan.live.marker_text`` (RFC 2136 prerequisites,
  a Route 53 change batch that deletes the exact old TXT, a Cloud DNS change whose deletions
  hold the exact old TXT). If the condition fails nothing is changed and ``LostRace`` is
  raised; the caller re-reads. Any other refusal raises ``AdapterError``. ``apply`` must
  finish or fail within the adapter's timeout; a timeout is an ``AdapterError`` and the
  caller re-reads before trying again (the change may or may not have happened: the marker
  tells).
* ``verify(desired)`` reads back from the source of truth (for DNS the authoritative
  server, not a cache) and raises ``VerifyError`` if it disagrees.
* ``check_access()`` makes one read-only call that proves the credentials reach the zone, for
  ``failover validate``; it raises ``AdapterError`` naming what is missing.
"""

from __future__ import annotations

import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from failover.errors import LostRace

_MARKER = re.compile(r"^epoch=(\d+) primary=(\S+) by=(\S+) at=(\d+)$")


@dataclass(frozen=True)
class Marker:
    """The ownership marker kept in TXT ``_failover.<domain>``."""

    epoch: int
    primary: str
    by: str
    at: int

    def text(self) -> str:
        return f"epoch={self.epoch} primary={self.primary} by={self.by} at={self.at}"

    @classmethod
    def parse(cls, text: str | None) -> Marker | None:
        if text is None:
            return None
        match = _MARKER.match(text.strip().strip('"'))
        if not match:
            return None
        return cls(int(match.group(1)), match.group(2), match.group(3), int(match.group(4)))


def marker_name(domain: str) -> str:
    return f"_failover.{domain.rstrip('.')}"


def sort_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(addresses), key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a))))


def split_families(addresses: Iterable[str]) -> tuple[list[str], list[str]]:
    v4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    v6 = [a for a in addresses if ipaddress.ip_address(a).version == 6]
    return v4, v6


@dataclass(frozen=True)
class Desired:
    """What one decision wants published for one domain."""

    domain: str
    primary: str
    epoch: int
    addresses: tuple[str, ...]  # the primary region's healthy gateways, sorted
    ttl: int
    by: str  # observer
    at: int  # unix seconds of the decision
    # every region's healthy gateway addresses, for adapters that act inside one region (eip)
    healthy: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def marker(self) -> Marker:
        return Marker(self.epoch, self.primary, self.by, self.at)


@dataclass(frozen=True)
class Live:
    domain: str
    addresses: tuple[str, ...]
    ttl: int | None
    marker_text: str | None  # exact stored value: the fencing token
    extra: dict[str, Any] = field(default_factory=dict)  # provider specifics (raw record sets)

    @property
    def marker(self) -> Marker | None:
        return Marker.parse(self.marker_text)


@dataclass(frozen=True)
class Plan:
    adapter: str
    live: Live
    desired: Desired
    changes: tuple[str, ...]  # human-readable lines; empty: nothing to do

    @property
    def noop(self) -> bool:
        return not self.changes


def marker_to_write(plan: Plan) -> str:
    """The marker text a change writes. When the decision is the one already published (a
    drift repair), the old text is kept, so its ``at`` still says when that primary was first
    published: a coordinator adopting the marker counts its hold-down from it."""
    old = plan.live.marker
    desired = plan.desired
    if old is not None and (old.epoch, old.primary) == (desired.epoch, desired.primary):
        return old.text()
    return desired.marker().text()


class Adapter(ABC):
    kind: ClassVar[str]

    def __init__(self, domain: str) -> None:
        self.domain = domain

    @property
    @abstractmethod
    def name(self) -> str:
        """Short label for tables and logs, e.g. ``rfc2136 127.0.0.1:5353``."""

    @abstractmethod
    def read(self) -> Live: ...

    def plan(self, live: Live, desired: Desired) -> Plan:
        marker = live.marker
        if marker is not None and marker.epoch > desired.epoch:
            raise LostRace(
                f"{self.name}: {marker_name(self.domain)} holds epoch {marker.epoch} "
                f"(primary {marker.primary}, by {marker.by}), newer than our epoch {desired.epoch}; "
                "not overwriting"
            )
        changes: list[str] = []
        if live.addresses != desired.addresses or (live.addresses and live.ttl != desired.ttl):
            before = ", ".join(live.addresses) or "(none)"
            after = ", ".join(desired.addresses)
            changes.append(f"{self.domain} A/AAAA: {before} -> {after} (ttl {desired.ttl})")
        if marker is None or (marker.epoch, marker.primary) != (desired.epoch, desired.primary):
            was = marker.text() if marker else (live.marker_text or "(none)")
            changes.append(f"{marker_name(self.domain)} TXT: {was} -> {desired.marker().text()}")
        return Plan(self.name, live, desired, tuple(changes))

    @abstractmethod
    def apply(self, plan: Plan) -> None: ...

    @abstractmethod
    def verify(self, desired: Desired) -> None: ...

    @abstractmethod
    def check_access(self) -> str: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
