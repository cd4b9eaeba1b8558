"""The traffic adapter interface: read → plan → apply (fenced) → verify.

An adapter owns one DNS name (or one Elastic IP) for one domain at one provider. It works like
a controller: it reads what is live, computes the difference to what the decision wants, sends
only that difference, then reads back.

Contract every backend keeps:

* It is built from its policy block by ``from_policy(block, domain, policy)`` and says the
  TTL it publishes with (``ttl``), which the coordinator puts in ``Desired``.
* ``read()`` is side-effect free and returns the live records together with the ownership
  marker exactly as stored (``Live.marker_text``). That text is what a change is fenced on.
* ``plan()`` is pure. An empty plan means the live state already matches: ``apply`` is then
  never called, so running the same decision twice sends no change request (idempotence).
  A live marker with a *newer* epoch than ours means another coordinator decided after us,
  and one with a *higher* fencing token means a newer leader has written: either way
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

The marker-fenced DNS adapters share one plan, fence and verify rule (``_dns.DnsAdapter``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Self, TypeVar

from failover.policy import Policy, Traffic

# the token field is optional: markers written before fencing tokens (and by sqlite-only
# deployments, whose token is 0) have none
_MARKER = re.compile(r"^epoch=(\d+) primary=(\S+) by=(\S+) at=(\d+)(?: token=(\d+))?$")


@dataclass(frozen=True)
class Marker:
    """The ownership marker kept in TXT ``_failover.<domain>``."""

    epoch: int
    primary: str
    by: str
    at: int
    token: int = 0  # the writing leader's fencing token; 0: no leader election (sqlite)

    def text(self) -> str:
        text = f"epoch={self.epoch} primary={self.primary} by={self.by} at={self.at}"
        return f"{text} token={self.token}" if self.token > 0 else text

    @classmethod
    def parse(cls, text: str | None) -> Marker | None:
        if text is None:
            return None
        match = _MARKER.match(text.strip().strip('"'))
        if not match:
            return None
        epoch, primary, by, at, token = match.groups()
        return cls(int(epoch), primary, by, int(at), int(token or 0))


def marker_name(domain: str) -> str:
    return f"_failover.{domain.rstrip('.')}"


@functools.lru_cache(maxsize=65536)
def _address_order(address: str) -> tuple[int, int]:
    # cached: every evaluation sorts every domain's gateways, and parsing was most of its CPU
    parsed = ipaddress.ip_address(address)
    return parsed.version, int(parsed)


def sort_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(addresses), key=_address_order))


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
    token: int = 0  # the acting leader's fencing token (0: no leader election)

    def marker(self) -> Marker:
        return Marker(self.epoch, self.primary, self.by, self.at, self.token)


@dataclass(frozen=True)
class LiveExtra:
    """What a backend keeps from its read for its own ``apply`` (the exact stored records it
    deletes, the association it detaches). Each backend subclasses it."""


E = TypeVar("E", bound=LiveExtra)


@dataclass(frozen=True)
class Live:
    domain: str
    addresses: tuple[str, ...]
    ttl: int | None
    marker_text: str | None  # exact stored value: what a change is fenced on
    extra: LiveExtra | None = None  # provider specifics; None when the backend keeps none

    @property
    def marker(self) -> Marker | None:
        return Marker.parse(self.marker_text)

    def extra_as(self, kind: type[E]) -> E:
        """The provider specifics, as the backend that read them stored them."""
        if not isinstance(self.extra, kind):
            raise TypeError(f"this Live of {self.domain} holds {type(self.extra).__name__}, not {kind.__name__}")
        return self.extra


@dataclass(frozen=True)
class Plan:
    adapter: str
    live: Live
    desired: Desired
    changes: tuple[str, ...]  # human-readable lines; empty: nothing to do

    @property
    def noop(self) -> bool:
        return not self.changes


B = TypeVar("B")


def block_of(block: Traffic, kind: type[B]) -> B:
    """The policy block as the type its backend reads (``build_adapter`` dispatches by kind)."""
    if not isinstance(block, kind):
        raise TypeError(f"expected a {kind.__name__} block, got a {block.kind} block")
    return block


class Adapter(ABC):
    kind: ClassVar[str]
    ttl: int  # seconds resolvers may cache what this adapter publishes; goes into Desired.ttl

    def __init__(self, domain: str, ttl: int) -> None:
        self.domain = domain
        self.ttl = ttl

    @classmethod
    @abstractmethod
    def from_policy(cls, block: Traffic, domain: str, policy: Policy) -> Self:
        """The adapter for one ``traffic`` block of one domain of ``policy`` (whose ``source``,
        the policy file, resolves relative paths)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Short label for tables and logs, e.g. ``rfc2136 127.0.0.1:5353``."""

    @abstractmethod
    def read(self) -> Live: ...

    @abstractmethod
    def plan(self, live: Live, desired: Desired) -> Plan: ...

    @abstractmethod
    def apply(self, plan: Plan) -> None: ...

    @abstractmethod
    def verify(self, desired: Desired) -> None: ...

    @abstractmethod
    def check_access(self) -> str: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
