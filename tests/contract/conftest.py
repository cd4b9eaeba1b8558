"""Fixtures of the contract suite: one ``Stand`` per DNS provider, each a real server.

* rfc2136: a real BIND 9 (``named``) with a TSIG key, behind a counting TCP relay;
* rfc2136-pdns: the same adapter against a real PowerDNS (``pdns_server``, gsqlite3 backend,
  ``dnsupdate=yes``, see tests/support/pdns.py), behind its own relay;
* route53: moto's server on loopback (Route 53's change-batch rules enforced, see
  tests/support/moto.py), reached through ``AWS_ENDPOINT_URL``;
* clouddns: the local Cloud DNS v1 stand-in (tests/support/clouddns_server.py);
* zonefile: a zone file in a fresh directory, read and hand-edited with dnspython; each
  rewrite bumps the SOA serial, which is how its change requests are counted.

A ``Stand`` builds adapters for a fresh name per test, and reaches the provider *around* the
adapter: what is published (read independently), hand edits (an operator in the console,
another coordinator), and how many change requests the provider received.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdatatype
import dns.zone
import pytest
from botocore.config import Config

from failover.adapters.abc import Adapter, Desired, marker_name, split_families
from tests.contract._relay import DnsTcpRelay
from tests.support.bind import Bind, start_bind
from tests.support.clouddns_server import CloudDnsServer
from tests.support.moto import Moto, aws_env, moto_server  # noqa: F401  (fixtures)
from tests.support.pdns import Pdns, start_pdns

ZONE = "example.com"
EAST, WEST = "us-east-1", "eu-west-1"
EAST_ADDRS = ("192.0.2.10", "192.0.2.11", "2001:db8::10")
WEST_ADDRS = ("198.51.100.10",)
_names = itertools.count(1)


def desired(domain: str, primary: str = EAST, epoch: int = 1, addresses: tuple[str, ...] = EAST_ADDRS,
            ttl: int = 30, by: str = EAST, at: int = 1_700_000_000, token: int = 0) -> Desired:
    return Desired(domain, primary, epoch, addresses, ttl, by, at, token=token)


def reconcile(adapter: Adapter, want: Desired) -> tuple[str, ...]:
    """One coordinator pass: read → plan → (apply → verify) unless the plan is empty."""
    plan = adapter.plan(adapter.read(), want)
    if not plan.noop:
        adapter.apply(plan)
        adapter.verify(want)
    return plan.changes


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unquote(value: str) -> str:
    return value.strip().strip('"')


@dataclass(frozen=True)
class Published:
    addresses: tuple[str, ...]
    ttl: int | None
    marker: str | None  # the marker text, quotes off


class Stand(ABC):
    kind: str

    def __init__(self) -> None:
        self.domain = f"t{next(_names)}.{ZONE}"

    @abstractmethod
    def adapter(self) -> Adapter: ...

    @abstractmethod
    def published(self) -> Published: ...

    @abstractmethod
    def hand_edit(self, addresses: tuple[str, ...], ttl: int = 30) -> None:
        """Replace the domain's A/AAAA at the provider, outside failover."""

    @abstractmethod
    def hand_marker(self, text: str, ttl: int = 30) -> None:
        """Write the marker at the provider, outside failover (another coordinator)."""

    @abstractmethod
    def change_requests(self) -> int:
        """Change requests the provider has received so far."""

    @abstractmethod
    def bad_credentials(self) -> contextlib.AbstractContextManager[Adapter]: ...

    @abstractmethod
    def unreachable(self) -> Adapter: ...


# -- rfc2136 on BIND and on PowerDNS --------------------------------------------------------------


class Rfc2136Stand(Stand):
    kind = "rfc2136"

    def __init__(self, server: Bind | Pdns, relay: DnsTcpRelay) -> None:
        super().__init__()
        self.server, self.relay = server, relay

    def make(
        self,
        port: int,
        secret: str | None = None,
        timeout: float = 2.0,
        key_name: str | None = None,
        signed: bool = True,
    ) -> Any:
        from failover.adapters.rfc2136 import Rfc2136Adapter

        key = (key_name or self.server.key_name, self.server.algorithm, secret or self.server.key_secret)
        return Rfc2136Adapter(self.domain, "127.0.0.1", port, self.server.zone, 30, key if signed else None, timeout)

    def adapter(self) -> Adapter:
        adapter: Adapter = self.make(self.relay.port)
        return adapter

    def _answer(self, name: str, rdtype: str) -> tuple[list[str], int | None]:
        query = dns.message.make_query(name, rdtype)
        response = dns.query.tcp(query, self.server.host, port=self.server.port, timeout=2)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                return [r.to_text() for r in rrset], int(rrset.ttl)
        return [], None

    def soa_serial(self) -> int:
        soa, _ = self._answer(self.server.zone, "SOA")
        return int(soa[0].split()[2])

    def published(self) -> Published:
        a, a_ttl = self._answer(self.domain, "A")
        aaaa, aaaa_ttl = self._answer(self.domain, "AAAA")
        txt, _ = self._answer(marker_name(self.domain), "TXT")
        addresses = tuple(sorted(a)) + tuple(sorted(aaaa))
        return Published(addresses, a_ttl or aaaa_ttl, unquote(txt[0]) if txt else None)

    def hand_edit(self, addresses: tuple[str, ...], ttl: int = 30) -> None:
        v4, v6 = split_families(addresses)

        def edit(update: Any) -> None:
            for rdtype, values in (("A", v4), ("AAAA", v6)):
                update.delete(self.domain + ".", rdtype)
                for value in values:
                    update.add(self.domain + ".", ttl, rdtype, value)

        self.make(self.server.port).raw_update(edit)

    def hand_marker(self, text: str, ttl: int = 30) -> None:
        def edit(update: Any) -> None:
            update.replace(marker_name(self.domain) + ".", ttl, "TXT", f'"{text}"')

        self.make(self.server.port).raw_update(edit)

    def change_requests(self) -> int:
        return self.relay.counts["UPDATE"]

    @contextlib.contextmanager
    def bad_credentials(self) -> Iterator[Adapter]:
        yield self.make(self.relay.port, secret=base64.b64encode(os.urandom(32)).decode())

    def unreachable(self) -> Adapter:
        adapter: Adapter = self.make(closed_port(), timeout=1.0)
        return adapter


# -- route53 on moto ------------------------------------------------------------------------------


class Route53Stand(Stand):
    kind = "route53"

    def __init__(self, moto: Moto, zone_id: str) -> None:
        super().__init__()
        self.moto, self.zone_id = moto, zone_id
        self.r53 = moto.client("route53")

    def adapter(self, **kwargs: Any) -> Any:
        from failover.adapters.route53 import Route53Adapter

        kwargs.setdefault("max_attempts", 2)
        return Route53Adapter(self.domain, self.zone_id, **kwargs)  # boto3 finds moto via AWS_ENDPOINT_URL

    def rrsets(self, name: str) -> dict[str, dict[str, Any]]:
        answer = self.r53.list_resource_record_sets(HostedZoneId=self.zone_id, StartRecordName=name, MaxItems="20")
        return {r["Type"]: r for r in answer["ResourceRecordSets"] if r["Name"].rstrip(".") == name}

    def published(self) -> Published:
        here = self.rrsets(self.domain)
        v4 = sorted(r["Value"] for r in here.get("A", {}).get("ResourceRecords", []))
        v6 = sorted(r["Value"] for r in here.get("AAAA", {}).get("ResourceRecords", []))
        ttl = next((here[t].get("TTL") for t in ("A", "AAAA") if t in here), None)
        marker = self.rrsets(marker_name(self.domain)).get("TXT")
        text = unquote(marker["ResourceRecords"][0]["Value"]) if marker else None
        return Published(tuple(v4) + tuple(v6), ttl, text)

    def _change(self, changes: list[dict[str, Any]]) -> None:
        self.r53.change_resource_record_sets(HostedZoneId=self.zone_id, ChangeBatch={"Changes": changes})

    def hand_edit(self, addresses: tuple[str, ...], ttl: int = 30) -> None:
        v4, v6 = split_families(addresses)
        here = self.rrsets(self.domain)
        changes = []
        for rdtype, values in (("A", v4), ("AAAA", v6)):
            if values:
                changes.append({"Action": "UPSERT", "ResourceRecordSet": {
                    "Name": self.domain, "Type": rdtype, "TTL": ttl,
                    "ResourceRecords": [{"Value": v} for v in values]}})
            elif rdtype in here:
                changes.append({"Action": "DELETE", "ResourceRecordSet": here[rdtype]})
        self._change(changes)

    def hand_marker(self, text: str, ttl: int = 30) -> None:
        self._change([{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": marker_name(self.domain), "Type": "TXT", "TTL": ttl,
            "ResourceRecords": [{"Value": f'"{text}"'}]}}])

    def change_requests(self) -> int:
        return self.moto.calls["ChangeResourceRecordSets"]

    @contextlib.contextmanager
    def bad_credentials(self) -> Iterator[Adapter]:
        client = boto3.session.Session(
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="wrong"
        ).client("route53", endpoint_url=self.moto.endpoint, region_name="us-east-1")
        with self.moto.iam_enforced():  # moto checks keys as AWS does only inside this
            yield self.adapter(client=client)

    def unreachable(self) -> Adapter:
        client = boto3.session.Session().client(
            "route53", endpoint_url=f"http://127.0.0.1:{closed_port()}", region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1, read_timeout=1),
        )
        adapter: Adapter = self.adapter(client=client)
        return adapter


# -- clouddns on the stand-in -----------------------------------------------------------------------


class CloudDnsStand(Stand):
    kind = "clouddns"
    zone = "example-com"

    def __init__(self, server: CloudDnsServer) -> None:
        super().__init__()
        self.server = server

    def adapter(self, **kwargs: Any) -> Any:
        from failover.adapters.clouddns import CloudDnsAdapter

        kwargs.setdefault("endpoint", self.server.endpoint)
        kwargs.setdefault("timeout", 2.0)
        kwargs.setdefault("sleep", lambda seconds: None)  # the stand-in moves on per poll, not per second
        return CloudDnsAdapter(self.domain, self.server.project, self.zone, **kwargs)

    def published(self) -> Published:
        a = self.server.rrset(self.zone, self.domain, "A")
        aaaa = self.server.rrset(self.zone, self.domain, "AAAA")
        marker = self.server.rrset(self.zone, marker_name(self.domain), "TXT")
        addresses = tuple(sorted(a["rrdatas"])) if a else ()
        addresses += tuple(sorted(aaaa["rrdatas"])) if aaaa else ()
        ttl = (a or aaaa or {}).get("ttl")
        return Published(addresses, ttl, unquote(marker["rrdatas"][0]) if marker else None)

    def hand_edit(self, addresses: tuple[str, ...], ttl: int = 30) -> None:
        v4, v6 = split_families(addresses)
        for rdtype, values in (("A", v4), ("AAAA", v6)):
            if values:
                self.server.put_rrset(self.zone, self.domain, rdtype, ttl, values)
            else:
                self.server.drop_rrset(self.zone, self.domain, rdtype)

    def hand_marker(self, text: str, ttl: int = 30) -> None:
        self.server.put_rrset(self.zone, marker_name(self.domain), "TXT", ttl, [f'"{text}"'])

    def change_requests(self) -> int:
        return self.server.requests["POST create"]

    @contextlib.contextmanager
    def bad_credentials(self) -> Iterator[Adapter]:
        self.server.required_token = "the-only-valid-token"  # our anonymous calls carry none
        try:
            yield self.adapter()
        finally:
            self.server.required_token = None

    def unreachable(self) -> Adapter:
        adapter: Adapter = self.adapter(endpoint=f"http://127.0.0.1:{closed_port()}", timeout=1.0)
        return adapter


# -- zonefile in a directory ------------------------------------------------------------------------


class ZonefileStand(Stand):
    kind = "zonefile"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.path = folder / f"{ZONE}.zone"
        self.origin = dns.name.from_text(ZONE)

    def adapter(self) -> Adapter:
        from failover.adapters.zonefile import ZonefileAdapter

        return ZonefileAdapter(self.domain, self.path, ZONE + ".", 30)

    def _zone(self) -> dns.zone.Zone:
        if self.path.exists():
            return dns.zone.from_file(str(self.path), origin=self.origin, relativize=True)
        zone = dns.zone.Zone(self.origin)  # what an operator starts a zone with
        soa = f"ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 30"
        zone.find_rdataset("@", "SOA", create=True).add(dns.rdata.from_text("IN", "SOA", soa), 3600)
        zone.find_rdataset("@", "NS", create=True).add(dns.rdata.from_text("IN", "NS", f"ns.{ZONE}."), 3600)
        return zone

    def _name(self, name: str) -> dns.name.Name:
        return dns.name.from_text(name).relativize(self.origin)

    def published(self) -> Published:
        zone = self._zone()
        found: dict[str, tuple[list[str], int | None]] = {}
        for rdtype in ("A", "AAAA", "TXT"):
            name = self._name(marker_name(self.domain) if rdtype == "TXT" else self.domain)
            rdataset = zone.get_rdataset(name, rdtype)
            if rdataset is not None:
                found[rdtype] = ([r.to_text() for r in rdataset], int(rdataset.ttl))
        a, aaaa = found.get("A", ([], None)), found.get("AAAA", ([], None))
        addresses = tuple(sorted(a[0])) + tuple(sorted(aaaa[0]))
        marker = unquote(found["TXT"][0][0]) if "TXT" in found else None
        return Published(addresses, a[1] or aaaa[1], marker)

    def _edit(self, change: Callable[[dns.zone.Zone], None]) -> None:
        """Rewrite the file by hand (atomically, the serial left alone: not a counted change)."""
        zone = self._zone()
        change(zone)
        temporary = self.folder / ".hand-edit"
        zone.to_file(str(temporary), relativize=True, want_origin=True)
        temporary.replace(self.path)

    def hand_edit(self, addresses: tuple[str, ...], ttl: int = 30) -> None:
        def edit(zone: dns.zone.Zone) -> None:
            for rdtype, values in zip(("A", "AAAA"), split_families(addresses), strict=True):
                zone.delete_rdataset(self._name(self.domain), rdtype)
                if values:
                    rdataset = zone.find_rdataset(self._name(self.domain), rdtype, create=True)
                    for value in values:
                        rdataset.add(dns.rdata.from_text("IN", rdtype, value), ttl)

        self._edit(edit)

    def hand_marker(self, text: str, ttl: int = 30) -> None:
        def edit(zone: dns.zone.Zone) -> None:
            name = self._name(marker_name(self.domain))
            zone.delete_rdataset(name, "TXT")
            zone.find_rdataset(name, "TXT", create=True).add(dns.rdata.from_text("IN", "TXT", f'"{text}"'), ttl)

        self._edit(edit)

    def change_requests(self) -> int:
        if not self.path.exists():
            return 0
        return int(next(iter(self._zone().find_rdataset("@", "SOA"))).serial) - 1  # each rewrite adds one

    def bad_credentials(self) -> contextlib.AbstractContextManager[Adapter]:
        raise NotImplementedError("a zone file has no credentials")

    def unreachable(self) -> Adapter:
        """A path that cannot be read or written: its directory is a regular file."""
        from failover.adapters.zonefile import ZonefileAdapter

        blocked = self.folder / "not-a-directory"
        blocked.write_text("")
        return ZonefileAdapter(self.domain, blocked / f"{ZONE}.zone", ZONE + ".", 30)


# -- servers and the parametrized stand -------------------------------------------------------------


@pytest.fixture(scope="session")
def contract_bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bind, DnsTcpRelay]]:
    bind = start_bind(tmp_path_factory.mktemp("contract-bind"), zone=ZONE)
    relay = DnsTcpRelay((bind.host, bind.port)).start()
    try:
        yield bind, relay
    finally:
        relay.stop()
        bind.stop()


@pytest.fixture(scope="session")
def contract_pdns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pdns, DnsTcpRelay]]:
    pdns = start_pdns(tmp_path_factory.mktemp("contract-pdns"), zone=ZONE)
    relay = DnsTcpRelay((pdns.host, pdns.port)).start()
    try:
        yield pdns, relay
    finally:
        relay.stop()
        pdns.stop()


@pytest.fixture(scope="session")
def clouddns_server() -> Iterator[CloudDnsServer]:
    server = CloudDnsServer(pending_polls=1).start()
    server.add_zone(CloudDnsStand.zone, ZONE + ".")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clouddns(clouddns_server: CloudDnsServer) -> Iterator[CloudDnsServer]:
    clouddns_server.required_token = None
    clouddns_server.denied.clear()
    clouddns_server.fail_next.clear()
    clouddns_server.pending_polls = 1
    clouddns_server.lose_next_answers = 0
    clouddns_server.authorization.clear()
    yield clouddns_server


@pytest.fixture
def route53_zone(aws_env: Moto) -> str:  # noqa: F811
    zone: str = aws_env.client("route53").create_hosted_zone(
        Name=ZONE + ".", CallerReference=f"contract-{next(_names)}"
    )["HostedZone"]["Id"]
    return zone.split("/")[-1]


def _stand(request: pytest.FixtureRequest, kind: str) -> Stand:
    if kind == "rfc2136":
        bind, relay = request.getfixturevalue("contract_bind")
        return Rfc2136Stand(bind, relay)
    if kind == "rfc2136-pdns":
        pdns, pdns_relay = request.getfixturevalue("contract_pdns")
        return Rfc2136Stand(pdns, pdns_relay)
    if kind == "route53":
        moto = request.getfixturevalue("aws_env")
        return Route53Stand(moto, request.getfixturevalue("route53_zone"))
    if kind == "zonefile":
        return ZonefileStand(request.getfixturevalue("tmp_path"))
    return CloudDnsStand(request.getfixturevalue("clouddns"))


@pytest.fixture(params=["rfc2136", "rfc2136-pdns", "route53", "clouddns", "zonefile"])
def stand(request: pytest.FixtureRequest) -> Stand:
    return _stand(request, request.param)


@pytest.fixture(params=["rfc2136", "rfc2136-pdns", "route53", "clouddns"])
def credentialed_stand(request: pytest.FixtureRequest) -> Stand:
    """The providers that authenticate their callers (a zone file has only file permissions,
    covered by the unreachable-path case)."""
    return _stand(request, request.param)


@pytest.fixture(params=["rfc2136", "rfc2136-pdns"])
def rfc2136_stand(request: pytest.FixtureRequest) -> Rfc2136Stand:
    """The RFC 2136 adapter on each authoritative server we support."""
    stand = _stand(request, request.param)
    assert isinstance(stand, Rfc2136Stand)
    return stand
