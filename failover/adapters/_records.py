"""What the cloud DNS adapters (route53, clouddns) share: whole-RRset records and their plan.

Both providers change records as whole RRsets inside one atomic request, and both make a
deletion conditional: it must name the RRset exactly as stored (type, TTL, every value), or
the request fails whole. So an adapter reads the RRsets at the domain's name and the marker
RRset as stored (``RecordSet``), and ``apply`` deletes exactly those and creates the wanted
ones in one request: the request is a compare-and-swap on everything it touches, and the
marker is always part of it (deleted as read, created again), which fences every change,
drift repairs included.

A domain is published in one of two shapes:

* addresses (default): the primary region's healthy gateways as A and AAAA RRsets;
* a per-region target: ``cname`` (both providers) or ``alias`` (Route 53: an alias to an
  ALB/NLB/CloudFront name), when each region sits behind its own load balancer name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from failover.adapters._dns import DnsAdapter, marker_to_write, quote_txt, unquote_txt
from failover.adapters.abc import Desired, Live, LiveExtra, Plan, split_families
from failover.errors import AdapterError

ADDRESS_TYPES = ("A", "AAAA")
MANAGED_TYPES = ("A", "AAAA", "CNAME")  # at the domain's own name; anything else there is left alone


@dataclass(frozen=True)
class Alias:
    """A Route 53 alias target."""

    hosted_zone_id: str
    dns_name: str
    evaluate_target_health: bool = False

    def key(self) -> tuple[str, str, bool]:
        return (self.hosted_zone_id, fqdn(self.dns_name), self.evaluate_target_health)


@dataclass(frozen=True)
class RecordSet:
    """One RRset as the provider stores it: the unit a change deletes (exactly) or creates."""

    rtype: str
    ttl: int | None  # None for a Route 53 alias (it has no TTL of its own)
    values: tuple[str, ...]  # rdata text exactly as stored (TXT keeps its quotes)
    alias: Alias | None = None

    def key(self) -> tuple[object, ...]:
        """Equality as DNS sees it: value order, case and trailing dots do not matter."""
        return (
            self.rtype,
            self.ttl,
            tuple(sorted(normalize(self.rtype, v) for v in self.values)),
            self.alias.key() if self.alias else None,
        )

    def same(self, other: RecordSet | None) -> bool:
        return other is not None and self.key() == other.key()

    def describe(self) -> str:
        if self.alias is not None:
            return f"{self.rtype} alias {fqdn(self.alias.dns_name)} ({self.alias.hosted_zone_id})"
        return f"{self.rtype} {', '.join(self.values)} ttl {self.ttl}"


def fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def normalize(rtype: str, value: str) -> str:
    if rtype in ADDRESS_TYPES:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    if rtype in ("CNAME", "NS", "PTR"):
        return fqdn(value)
    return value


def address_records(addresses: tuple[str, ...], ttl: int) -> dict[str, RecordSet]:
    v4, v6 = split_families(addresses)
    out: dict[str, RecordSet] = {}
    if v4:
        out["A"] = RecordSet("A", ttl, tuple(v4))
    if v6:
        out["AAAA"] = RecordSet("AAAA", ttl, tuple(v6))
    return out


def addresses_of(records: Mapping[str, RecordSet]) -> tuple[str, ...]:
    found = [v for t in ADDRESS_TYPES if t in records and records[t].alias is None for v in records[t].values]
    return tuple(
        sorted(
            {str(ipaddress.ip_address(v)) for v in found},
            key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)),
        )
    )


def common_ttl(records: Mapping[str, RecordSet]) -> int | None:
    """The TTL of the address RRsets when they agree (None otherwise: a TTL drift to repair)."""
    ttls = {records[t].ttl for t in ADDRESS_TYPES if t in records}
    return ttls.pop() if len(ttls) == 1 else None


@dataclass(frozen=True)
class RecordsExtra(LiveExtra):
    """What a cloud read keeps for ``apply``: the RRsets at the domain's name (types A, AAAA,
    CNAME) and the marker's RRset, exactly as stored: those are what a change deletes."""

    records: Mapping[str, RecordSet]
    marker_set: RecordSet | None


class RecordsAdapter(DnsAdapter):
    """Base of the cloud DNS adapters: plan over whole RRsets; subclasses read and apply."""

    cname: Mapping[str, str]

    def wanted(self, desired: Desired) -> dict[str, RecordSet]:
        """The RRsets the decision wants at the domain's name."""
        if self.cname:
            target = self.cname.get(desired.primary)
            if target is None:  # the policy check maps every region; only direct construction can miss
                raise AdapterError(f"{self.name}: no cname target for region {desired.primary}")
            return {"CNAME": RecordSet("CNAME", desired.ttl, (fqdn(target),))}
        return address_records(desired.addresses, desired.ttl)

    def live(self, records: dict[str, RecordSet], marker_set: RecordSet | None) -> Live:
        """The ``Live`` a cloud read returns, from the RRsets found and the marker's RRset."""
        marker_text = None
        if marker_set is not None:
            marker_text = unquote_txt(marker_set.values) or " ".join(marker_set.values)
        return Live(
            self.domain, addresses_of(records), common_ttl(records), marker_text, RecordsExtra(records, marker_set)
        )

    def _differs(self, live: Live, desired: Desired) -> bool:
        have = live.extra_as(RecordsExtra).records
        want = self.wanted(desired)
        return set(have) != set(want) or any(not want[t].same(have[t]) for t in want)

    def record_changes_text(self, live: Live, desired: Desired) -> list[str]:
        if not self._differs(live, desired):
            return []
        have = live.extra_as(RecordsExtra).records
        want = self.wanted(desired)
        before = "; ".join(have[t].describe() for t in sorted(have)) or "(none)"
        after = "; ".join(want[t].describe() for t in sorted(want)) or "(none)"
        return [f"{self.domain}: {before} -> {after}"]

    def record_problems(self, live: Live, desired: Desired) -> list[str]:
        if not self._differs(live, desired):
            return []
        have = live.extra_as(RecordsExtra).records
        return ["; ".join(have[t].describe() for t in sorted(have)) or "no records"]

    def record_changes(self, plan: Plan) -> tuple[list[RecordSet], list[RecordSet]]:
        """(deletions exactly as read, additions) for the domain's name and the marker.

        The marker is always deleted as read and created again: that is the fence."""
        read = plan.live.extra_as(RecordsExtra)
        have = read.records
        want = self.wanted(plan.desired)
        deletions = [have[t] for t in sorted(have) if not have[t].same(want.get(t))]
        additions = [want[t] for t in sorted(want) if not want[t].same(have.get(t))]
        if read.marker_set is not None:
            deletions.append(read.marker_set)
        additions.append(RecordSet("TXT", plan.desired.ttl, (quote_txt(marker_to_write(plan)),)))
        return deletions, additions
