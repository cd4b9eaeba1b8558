"""Amazon Route 53 (boto3): the domain's records and the marker in one conditional change batch.

How a change is fenced. Route 53 applies a change batch as one transaction (all or nothing),
and a ``DELETE`` only succeeds when it names the RRset exactly as stored: name, type, TTL and
every value (an alias: its exact target). So each batch we send

* ``DELETE``\\ s every RRset it replaces exactly as ``read()`` saw it, the marker
  ``_failover.<domain>`` TXT included, and
* ``CREATE``\\ s the new RRsets and the new marker.

If anyone changed the marker (or the records) after our read, a ``DELETE`` no longer matches,
Route 53 answers ``InvalidChangeBatch`` and changes nothing: a lost race. On the first publish
there is no marker to delete; the ``CREATE`` of the marker then fails if one appeared in the
meantime. ``UPSERT`` is never used: it would overwrite whatever is there.

After the batch is accepted we wait, with a deadline, for ``GetChange`` to report ``INSYNC``
(every Route 53 authoritative server has it), then ``verify`` reads the records back.

Retries are botocore's (``retry_mode``, ``max_attempts``). A retried batch whose first attempt
did land answers ``InvalidChangeBatch`` (its DELETEs no longer match); we tell that apart from
a lost race by reading the marker back: if it is exactly the one we wrote, the change is ours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

from failover.adapters._aws import call, make_client
from failover.adapters._dns import marker_to_write
from failover.adapters._poll import poll_until
from failover.adapters._records import (
    MANAGED_TYPES,
    Alias,
    RecordsAdapter,
    RecordSet,
    fqdn,
)
from failover.adapters.abc import Desired, Live, Plan, block_of, marker_name
from failover.errors import AdapterError, AwsError, LostRace, UsageError
from failover.policy import AliasTarget, Policy, Route53Traffic, Traffic

_OCTAL = re.compile(r"\\(\d{3})")
# InvalidChangeBatch messages that mean "the zone is not what we read" (Route 53's wording)
_RACE_WORDS = ("tried to delete", "tried to create", "values provided do not match", "but it was not found",
               "but it already exists")


def _decode_name(name: str) -> str:
    """Route 53 returns names with octal escapes (``\\052`` for ``*``)."""
    return fqdn(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), name))


class Route53Adapter(RecordsAdapter):
    kind = "route53"
    readback = "Route 53 holds"

    def __init__(
        self,
        domain: str,
        hosted_zone_id: str,
        ttl: int = 30,
        *,
        alias: Mapping[str, AliasTarget] | None = None,
        cname: Mapping[str, str] | None = None,
        wait: float = 120.0,
        timeout: float = 10.0,
        retry_mode: str = "standard",
        max_attempts: int = 5,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(domain, ttl)
        if alias and cname:
            raise UsageError("route53: use either alias or cname, not both")
        self.zone_id = hosted_zone_id.removeprefix("/hostedzone/")
        self.alias: Mapping[str, AliasTarget] = dict(alias or {})
        self.cname: Mapping[str, str] = dict(cname or {})
        self.wait = wait
        self.fqdn = fqdn(domain)
        self.marker_fqdn = fqdn(marker_name(domain))
        self._sleep = sleep
        self.client = client or make_client(
            "route53", retry_mode=retry_mode, max_attempts=max_attempts, timeout=timeout
        )

    @classmethod
    def from_policy(cls, block: Traffic, domain: str, policy: Policy) -> Self:
        block = block_of(block, Route53Traffic)
        return cls(
            domain, block.zone_id, block.ttl, alias=block.alias, cname=block.cname, wait=block.wait,
            timeout=block.timeout, retry_mode=block.retry_mode, max_attempts=block.max_attempts,
        )

    @property
    def name(self) -> str:
        return f"route53 {self.zone_id}"

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return call(self.name, self.client, operation, **params)
        except AwsError as exc:
            if exc.code == "NoSuchHostedZone":
                raise AwsError(
                    f"{self.name}: hosted zone {self.zone_id} does not exist "
                    "or these credentials cannot see it",
                    exc.code, operation,
                ) from None
            raise

    # -- records -------------------------------------------------------------------------------

    def wanted(self, desired: Desired) -> dict[str, RecordSet]:
        if not self.alias:
            return super().wanted(desired)
        target = self.alias.get(desired.primary)
        if target is None:  # the policy check maps every region; only direct construction can miss
            raise AdapterError(f"{self.name}: no alias target for region {desired.primary}")
        alias = Alias(target.hosted_zone_id, fqdn(target.dns_name), target.evaluate_target_health)
        out = {"A": RecordSet("A", None, (), alias)}
        if target.dualstack:
            out["AAAA"] = RecordSet("AAAA", None, (), alias)
        return out

    def _list(self, name: str, rtype: str | None = None) -> list[dict[str, Any]]:
        """The raw RRsets stored at ``name`` (of ``rtype`` only, when given)."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"HostedZoneId": self.zone_id, "StartRecordName": name, "MaxItems": "20"}
        if rtype:
            params["StartRecordType"] = rtype
        while True:
            page = self._call("ListResourceRecordSets", **params)
            for rrset in page.get("ResourceRecordSets", []):
                if _decode_name(rrset["Name"]) != name or (rtype and rrset["Type"] != rtype):
                    return found
                found.append(rrset)
            if not page.get("IsTruncated") or _decode_name(page.get("NextRecordName", "")) != name:
                return found
            params["StartRecordName"] = page["NextRecordName"]
            params["StartRecordType"] = page["NextRecordType"]
            if page.get("NextRecordIdentifier"):
                params["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def _record_set(self, raw: dict[str, Any]) -> RecordSet:
        if raw.get("SetIdentifier") is not None:
            raise AdapterError(
                f"{self.name}: {raw['Name']} {raw['Type']} is a routing-policy record (SetIdentifier "
                f"{raw['SetIdentifier']!r}); failover manages one simple record per name: remove those "
                "or give failover a name of its own"
            )
        alias = None
        if raw.get("AliasTarget"):
            t = raw["AliasTarget"]
            alias = Alias(t["HostedZoneId"], t["DNSName"], bool(t.get("EvaluateTargetHealth", False)))
        values = tuple(r["Value"] for r in raw.get("ResourceRecords", []))
        ttl = int(raw["TTL"]) if "TTL" in raw and alias is None else None
        return RecordSet(raw["Type"], ttl, values, alias)

    def _wire(self, record: RecordSet) -> dict[str, Any]:
        name = self.marker_fqdn if record.rtype == "TXT" else self.fqdn
        out: dict[str, Any] = {"Name": name, "Type": record.rtype}
        if record.alias is not None:
            out["AliasTarget"] = {
                "HostedZoneId": record.alias.hosted_zone_id,
                "DNSName": record.alias.dns_name,
                "EvaluateTargetHealth": record.alias.evaluate_target_health,
            }
        else:
            out["TTL"] = record.ttl
            out["ResourceRecords"] = [{"Value": v} for v in record.values]
        return out

    # -- contract ------------------------------------------------------------------------------

    def read(self) -> Live:
        records: dict[str, RecordSet] = {}
        for raw in self._list(self.fqdn):
            if raw["Type"] in MANAGED_TYPES:
                records[raw["Type"]] = self._record_set(raw)
        marker_raw = self._list(self.marker_fqdn, "TXT")
        marker_set = self._record_set(marker_raw[0]) if marker_raw else None
        return self.live(records, marker_set)

    def change_batch(self, plan: Plan) -> list[dict[str, Any]]:
        """The exact batch ``apply`` sends: DELETEs of what was read, then CREATEs."""
        deletions, additions = self.record_changes(plan)
        return [{"Action": "DELETE", "ResourceRecordSet": self._wire(r)} for r in deletions] + [
            {"Action": "CREATE", "ResourceRecordSet": self._wire(r)} for r in additions
        ]

    def apply(self, plan: Plan) -> None:
        if plan.noop:
            return
        desired = plan.desired
        written = marker_to_write(plan)
        comment = f"failover {self.domain}: epoch {desired.epoch} primary {desired.primary} by {desired.by}"
        try:
            answer = self._call(
                "ChangeResourceRecordSets",
                HostedZoneId=self.zone_id,
                ChangeBatch={"Comment": comment[:256], "Changes": self.change_batch(plan)},
            )
        except AwsError as exc:
            if exc.code != "InvalidChangeBatch":
                raise
            if not any(word in str(exc).lower() for word in _RACE_WORDS):
                raise  # a batch Route 53 refuses for another reason (e.g. a CNAME beside other records)
            if self.landed(desired, written):
                return  # a retried attempt: the first one went through
            raise LostRace(
                f"{self.name}: the zone changed since we read it, Route 53 refused the batch whole "
                f"({exc}); nothing was written"
            ) from None
        info = answer["ChangeInfo"]
        self._wait_insync(info["Id"], info["Status"])

    def _wait_insync(self, change_id: str, status: str) -> None:
        def still(status: str) -> AdapterError:
            return AdapterError(
                f"{self.name}: change {change_id} was accepted but is still {status} after {self.wait:g}s; "
                "Route 53 will finish it and the next cycle verifies it"
            )

        poll_until(
            status, lambda: str(self._call("GetChange", Id=change_id)["ChangeInfo"]["Status"]),
            lambda status: status == "INSYNC",
            wait=self.wait, sleep=self._sleep, first_delay=0.5, max_delay=5.0, timed_out=still,
        )

    def check_access(self) -> str:
        zone = self._call("GetHostedZone", Id=self.zone_id)["HostedZone"]
        zone_name = fqdn(_decode_name(zone["Name"]))
        if not (self.fqdn == zone_name or self.fqdn.endswith("." + zone_name)):
            raise AdapterError(f"{self.name}: {self.domain} is not inside hosted zone {zone_name}")
        if self.cname and self.fqdn == zone_name:
            raise AdapterError(
                f"{self.name}: {self.domain} is the zone apex, which cannot hold a CNAME; use alias"
            )
        self._call(
            "ListResourceRecordSets", HostedZoneId=self.zone_id, StartRecordName=self.fqdn, MaxItems="1"
        )
        private = " private" if zone.get("Config", {}).get("PrivateZone") else ""
        return (
            f"{self.name}: reads{private} zone {zone_name} "
            "(route53:GetHostedZone, route53:ListResourceRecordSets); "
            "changes also need route53:ChangeResourceRecordSets and route53:GetChange, which are not "
            "tried without writing"
        )
