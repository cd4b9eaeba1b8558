"""A zone file rewritten atomically, for servers that serve files (CoreDNS, BIND, Knot, NSD).

The fence is the marker inside the file, compared under an exclusive ``flock`` on a lock file
beside it; the new text goes to a temporary file in the same directory, is fsynced, and
replaces the old one with ``os.replace`` (atomic on POSIX), so a server reading the file sees
the old zone or the new one, never half of one. The SOA serial goes up with each rewrite.
A missing file is created with a minimal SOA and NS; a path that cannot be read (a directory,
no permission) is an error, never taken for an empty zone.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from failover.adapters._dns import DnsAdapter, marker_to_write, quote_txt, txt_strings
from failover.adapters.abc import Live, Plan, block_of, marker_name, sort_addresses, split_families
from failover.errors import AdapterError, LostRace, UsageError
from failover.policy import Policy, Traffic, ZonefileTraffic, resolve_relative


class ZonefileAdapter(DnsAdapter):
    kind = "zonefile"
    readback = "the file holds"

    def __init__(
        self, domain: str, path: str | Path, zone: str, ttl: int = 30, reload_command: list[str] | None = None
    ) -> None:
        super().__init__(domain, ttl)
        self.path = Path(path)
        self.origin = dns.name.from_text(zone)
        self.reload_command = reload_command or []
        if not dns.name.from_text(domain).is_subdomain(self.origin):
            raise UsageError(f"zonefile: {domain} is not inside zone {zone}")
        self._name = dns.name.from_text(domain).relativize(self.origin)
        self._marker = dns.name.from_text(marker_name(domain)).relativize(self.origin)

    @classmethod
    def from_policy(cls, block: Traffic, domain: str, policy: Policy) -> Self:
        block = block_of(block, ZonefileTraffic)
        return cls(domain, resolve_relative(policy.source, block.path), block.zone, block.ttl, block.reload_command)

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

    def _new_zone(self) -> dns.zone.Zone:
        zone = dns.zone.Zone(self.origin)
        soa = zone.find_rdataset("@", "SOA", create=True)
        soa_text = f"ns.{self.origin} hostmaster.{self.origin} 1 3600 600 86400 30"
        soa.add(dns.rdata.from_text("IN", "SOA", soa_text), 3600)
        zone.find_rdataset("@", "NS", create=True).add(dns.rdata.from_text("IN", "NS", f"ns.{self.origin}"), 3600)
        return zone

    def _load(self) -> dns.zone.Zone:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._new_zone()  # not written yet: the first publish creates it
        except UnicodeDecodeError as exc:
            raise AdapterError(f"{self.name}: cannot parse {self.path}: {exc}") from None
        except OSError as exc:  # a directory, a path through a file, no permission: not "empty"
            raise AdapterError(f"{self.name}: cannot read {self.path}: {exc.strerror}") from None
        try:
            return dns.zone.from_text(
                text, origin=self.origin, relativize=True, filename=str(self.path), allow_include=True,
                check_origin=True,
            )
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
            marker_text = txt_strings(next(iter(txt)).strings)
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
                dns.rdata.from_text("IN", "TXT", quote_txt(marker_to_write(plan))), desired.ttl
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

    def check_access(self) -> str:
        self._load()  # readable and parses (or not there yet)
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # the first publish creates the missing directories
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise AdapterError(f"{self.name}: cannot write in {folder}, so cannot publish {self.path}")
        if self.path.exists():
            return f"{self.name}: {self.path} (zone {self.origin}) parses and is writable"
        return f"{self.name}: {self.path} (zone {self.origin}) will be created on first publish"
