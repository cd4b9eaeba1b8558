"""A zone file rewritten atomically, for servers that serve files (CoreDNS, BIND, Knot, NSD).

The fence is the marker inside the file, compared under an exclusive ``flock`` on a lock file
beside it; the new text goes to a temporary file in the same directory, is fsynced, and
replaces the old one with ``os.replace`` (atomic on POSIX), so a server reading the file sees
the old zone or the new one, never half of one. The SOA serial goes up with each rewrite.
A missing file is created with a minimal SOA and NS.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from failover.adapters.abc import (
    Adapter,
    Desired,
    Live,
    Plan,
    marker_name,
    marker_to_write,
    sort_addresses,
    split_families,
)
from failover.errors import AdapterError, LostRace, UsageError, VerifyError
from failover.policy import ZonefileTraffic, resolve_relative


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ZonefileAdapter(Adapter):
    kind = "zonefile"

    def __init__(
        self, domain: str, path: str | Path, zone: str, ttl: int = 30, reload_command: list[str] | None = None
    ) -> None:
        super().__init__(domain)
        self.path = Path(path)
        self.ttl = ttl
        self.origin = dns.name.from_text(zone)
        self.reload_command = reload_command or []
        if not dns.name.from_text(domain).is_subdomain(self.origin):
            raise UsageError(f"zonefile: {domain} is not inside zone {zone}")
        self._name = dns.name.from_text(domain).relativize(self.origin)
        self._marker = dns.name.from_text(marker_name(domain)).relativize(self.origin)

    @classmethod
    def from_policy(cls, block: ZonefileTraffic, domain: str, policy_source: str | None = None) -> ZonefileAdapter:
        return cls(domain, resolve_relative(policy_source, block.path), block.zone, block.ttl, block.reload_command)

    @property
    def name(self) -> str:
        return f"zonefile {self.path.name}"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(str(self.path) + ".lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield
        except OSError as exc:
            raise AdapterError(f"{self.name}: cannot lock {self.path}: {exc.strerror}") from None

    def _load(self) -> dns.zone.Zone:
        if not self.path.exists():
            zone = dns.zone.Zone(self.origin)
            soa = zone.find_rdataset("@", "SOA", create=True)
            soa.add(
                dns.rdata.from_text("IN", "SOA", f"ns.{self.origin} hostmaster.{self.origin} 1 3600 600 86400 30"), 3600
            )
            zone.find_rdataset("@", "NS", create=True).add(dns.rdata.from_text("IN", "NS", f"ns.{self.origin}"), 3600)
            return zone
        try:
            return dns.zone.from_file(str(self.path), origin=self.origin, relativize=True, check_origin=True)
        except (OSError, dns.exception.DNSException) as exc:
            raise AdapterError(f"{self.name}: cannot parse {self.path}: {exc}") from None

    def _live(self, zone: dns.zone.Zone) -> Live:
        addresses: list[str] = []
        ttl = None
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rdataset = zone.get_rdataset(self._name, rdtype)
            if rdataset is not None:
                addresses.extend(r.address for r in rdataset)
                ttl = ttl if ttl is not None else int(rdataset.ttl)
        txt = zone.get_rdataset(self._marker, dns.rdatatype.TXT)
        marker_text = None
        if txt:
            marker_text = b"".join(next(iter(txt)).strings).decode(errors="replace")
        return Live(self.domain, sort_addresses(addresses), ttl, marker_text)

    def read(self) -> Live:
        return self._live(self._load())

    def apply(self, plan: Plan) -> None:
        desired = plan.desired
        with self._locked():
            zone = self._load()
            if self._live(zone).marker_text != plan.live.marker_text:
                raise LostRace(f"{self.name}: {marker_name(self.domain)} changed since we read it; nothing was written")
            v4, v6 = split_families(desired.addresses)
            for rdtype, values in (("A", v4), ("AAAA", v6)):
                zone.delete_rdataset(self._name, rdtype)
                if values:
                    rdataset = zone.find_rdataset(self._name, rdtype, create=True)
                    for value in values:
                        rdataset.add(dns.rdata.from_text("IN", rdtype, value), desired.ttl)
            zone.delete_rdataset(self._marker, "TXT")
            zone.find_rdataset(self._marker, "TXT", create=True).add(
                dns.rdata.from_text("IN", "TXT", _quote(marker_to_write(plan))), desired.ttl
            )
            self._bump_serial(zone)
            self._write(zone)
        self._reload()

    def _bump_serial(self, zone: dns.zone.Zone) -> None:
        soa_set = zone.find_rdataset("@", "SOA")
        soa = next(iter(soa_set))
        bumped = soa.replace(serial=(soa.serial + 1) % 2**32)
        zone.replace_rdataset("@", dns.rdataset.from_rdata(soa_set.ttl, bumped))

    def _write(self, zone: dns.zone.Zone) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".zone-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(f"$ORIGIN {self.origin}\n")
                zone.to_file(out, relativize=True, want_origin=False)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise AdapterError(f"{self.name}: cannot write {self.path}: {exc.strerror}") from None

    def _reload(self) -> None:
        if not self.reload_command:
            return
        try:
            done = subprocess.run(self.reload_command, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AdapterError(f"{self.name}: reload command failed: {exc}") from None
        if done.returncode != 0:
            raise AdapterError(f"{self.name}: reload command exited {done.returncode}: {done.stderr.strip()[:200]}")

    def verify(self, desired: Desired) -> None:
        live = self.read()
        marker = live.marker
        if live.addresses != desired.addresses or marker is None or marker.epoch != desired.epoch:
            raise VerifyError(f"{self.name}: the file holds {live.addresses} / {live.marker_text!r} after the rewrite")

    def check_access(self) -> str:
        if self.path.exists():
            self._load()
            if not os.access(self.path.parent, os.W_OK):
                raise AdapterError(f"{self.name}: directory {self.path.parent} is not writable")
            return f"{self.name}: {self.path} parses and is writable"
        if not os.access(self.path.parent if self.path.parent.exists() else Path("."), os.W_OK):
            raise AdapterError(f"{self.name}: cannot create {self.path}")
        return f"{self.name}: {self.path} will be created on first publish"
