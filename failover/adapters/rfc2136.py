"""RFC 2136 dynamic DNS updates, TSIG-signed, fenced by prerequisites (dnspython).

The record change and the marker change travel in one UPDATE message whose prerequisite is
the marker exactly as read (RFC 2136 §2.4.2, "RRset exists, value dependent"), or "RRset
does not exist" (§2.4.3) when there was none. The server applies all of it or none of it; a
failed prerequisite answers NXRRSET / YXRRSET, which we report as a lost race.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.tsigkeyring
import dns.update

from failover.adapters._dns import DnsAdapter, marker_to_write, quote_txt, txt_strings
from failover.adapters.abc import (
    Live,
    LiveExtra,
    Plan,
    block_of,
    marker_name,
    sort_addresses,
    split_families,
)
from failover.errors import AdapterError, LostRace, UsageError
from failover.policy import Policy, Rfc2136Traffic, Traffic, require_env

_RACE_CODES = {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}


@dataclass(frozen=True)
class Rfc2136Extra(LiveExtra):
    """The marker RRset as read (rdata in presentation form): the update's prerequisite."""

    marker_rdata: tuple[str, ...]


class Rfc2136Adapter(DnsAdapter):
    kind = "rfc2136"
    readback = "the server serves"

    def __init__(
        self,
        domain: str,
        server: str,
        port: int,
        zone: str,
        ttl: int = 30,
        tsig: tuple[str, str, str] | None = None,  # (key name, algorithm, base64 secret)
        timeout: float = 3.0,
    ) -> None:
        super().__init__(domain, ttl)
        self.server, self.port, self.timeout = server, port, timeout
        self.zone = dns.name.from_text(zone)
        self.qname = dns.name.from_text(domain)
        self.marker_qname = dns.name.from_text(marker_name(domain))
        if not self.qname.is_subdomain(self.zone):
            raise UsageError(f"rfc2136: {domain} is not inside zone {zone}")
        self._keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self._keyname: dns.name.Name | None = None
        if tsig is not None:
            name, algorithm, secret = tsig
            try:
                base64.b64decode(secret, validate=True)
            except (binascii.Error, ValueError):
                raise UsageError(f"rfc2136: the TSIG secret for key {name} is not valid base64") from None
            self._keyname = dns.name.from_text(name)
            self._keyring = {self._keyname: dns.tsig.Key(self._keyname, secret, algorithm)}

    @classmethod
    def from_policy(cls, block: Traffic, domain: str, policy: Policy) -> Self:
        block = block_of(block, Rfc2136Traffic)
        host, port = block.host_port
        tsig = None
        if block.tsig is not None:
            secret = require_env(block.tsig.secret_env, f"rfc2136 TSIG key {block.tsig.name}")
            tsig = (block.tsig.name, block.tsig.algorithm, secret)
        return cls(domain, host, port, block.zone, block.ttl, tsig, block.timeout)

    @property
    def name(self) -> str:
        return f"rfc2136 {self.server}:{self.port}"

    # -- wire ------------------------------------------------------------------------------

    def _sign(self, message: dns.message.Message) -> None:
        if self._keyring is not None:
            message.use_tsig(self._keyring, keyname=self._keyname)

    def _send(self, message: dns.message.Message, what: str) -> dns.message.Message:
        self._sign(message)
        try:
            return dns.query.tcp(message, self.server, port=self.port, timeout=self.timeout)
        except dns.exception.Timeout:
            raise AdapterError(f"{self.name}: no answer to {what} within {self.timeout:g}s") from None
        except (dns.tsig.PeerError, dns.message.UnknownTSIGKey, dns.tsig.BadSignature) as exc:
            raise self._key_rejected(type(exc).__name__) from None
        except OSError as exc:
            raise AdapterError(f"{self.name}: unreachable ({exc.strerror or exc})") from None
        except ValueError as exc:  # e.g. a host name where dnspython needs an address
            raise AdapterError(f"{self.name}: {what} failed: {exc}") from None
        except dns.exception.FormError as exc:
            # PowerDNS answers a key it rejects with a bare NOTAUTH, no TSIG record (BIND says
            # BADKEY/BADSIG in one); dnspython then refuses the unsigned answer to a signed question
            if self._keyring is not None and "TSIG" in str(exc):
                raise self._key_rejected("unsigned answer") from None
            raise AdapterError(f"{self.name}: {what} failed: {exc}") from None
        except dns.exception.DNSException as exc:
            raise AdapterError(f"{self.name}: {what} failed: {exc}") from None

    def _key_rejected(self, how: str) -> AdapterError:
        return AdapterError(
            f"{self.name}: the server rejected our TSIG key {self._keyname} ({how}); "
            "check the key name, algorithm and secret"
        )

    def _query(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> list[Any]:
        return self._query_ttl(qname, rdtype)[0]

    def _query_ttl(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> tuple[list[Any], int | None]:
        response = self._send(dns.message.make_query(qname, rdtype), f"query {qname} {rdtype.name}")
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return [], None
        if rcode != dns.rcode.NOERROR:
            raise AdapterError(f"{self.name}: query {qname} {rdtype.name} answered {dns.rcode.to_text(rcode)}")
        if not response.flags & dns.flags.AA:
            raise AdapterError(f"{self.name}: not authoritative for {self.zone}")
        rrset = response.get_rrset(response.answer, qname, dns.rdataclass.IN, rdtype)
        return (list(rrset.items), int(rrset.ttl)) if rrset is not None else ([], None)

    # -- contract ----------------------------------------------------------------------------

    def read(self) -> Live:
        a, a_ttl = self._query_ttl(self.qname, dns.rdatatype.A)
        aaaa, aaaa_ttl = self._query_ttl(self.qname, dns.rdatatype.AAAA)
        txt = self._query(self.marker_qname, dns.rdatatype.TXT)
        ttl = a_ttl if a_ttl is not None else aaaa_ttl
        marker_text = txt_strings(txt[0].strings) if txt else None
        addresses = sort_addresses([r.address for r in a] + [r.address for r in aaaa])
        return Live(self.domain, addresses, ttl, marker_text, Rfc2136Extra(tuple(r.to_text() for r in txt)))

    def _update(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(self.zone)

    def apply(self, plan: Plan) -> None:
        desired = plan.desired
        update = self._update()
        old = plan.live.extra_as(Rfc2136Extra).marker_rdata
        if old:  # fence: the marker must still be exactly what we read
            update.present(self.marker_qname, dns.rdataset.from_text_list("IN", "TXT", 0, list(old)))
        else:
            update.absent(self.marker_qname, "TXT")
        v4, v6 = split_families(desired.addresses)
        for rdtype, addresses in (("A", v4), ("AAAA", v6)):
            update.delete(self.qname, rdtype)
            for address in addresses:
                update.add(self.qname, desired.ttl, rdtype, address)
        update.delete(self.marker_qname, "TXT")
        update.add(self.marker_qname, desired.ttl, "TXT", quote_txt(marker_to_write(plan)))
        self._apply_message(update)

    def _apply_message(self, update: dns.update.UpdateMessage) -> None:
        response = self._send(update, "update")
        rcode = response.rcode()
        if rcode in _RACE_CODES:
            raise LostRace(
                f"{self.name}: {marker_name(self.domain)} changed since we read it "
                f"(prerequisite failed: {dns.rcode.to_text(rcode)}); nothing was written"
            )
        if rcode == dns.rcode.REFUSED:
            who = f"key {self._keyname}" if self._keyname else "unsigned updates"
            raise AdapterError(
                f"{self.name}: update REFUSED: the server's update policy does not admit {who} (BIND: "
                "allow-update / update-policy; PowerDNS: dnsupdate=yes, allow-dnsupdate-from, TSIG-ALLOW-DNSUPDATE)"
            )
        if rcode == dns.rcode.NOTAUTH:
            raise AdapterError(
                f"{self.name}: update answered NOTAUTH: not authoritative for {self.zone} or TSIG rejected"
            )
        if rcode != dns.rcode.NOERROR:
            raise AdapterError(f"{self.name}: update answered {dns.rcode.to_text(rcode)}")

    def check_access(self) -> str:
        soa = self._query(self.zone, dns.rdatatype.SOA)
        if not soa:
            raise AdapterError(f"{self.name}: no SOA for {self.zone}: the server does not serve the zone")
        signed = f", TSIG key {self._keyname} accepted" if self._keyname else ", unsigned"
        return f"{self.name}: serves {self.zone} (serial {soa[0].serial}){signed}"

    # for tests and the zonefile sibling: raw edits outside the fencing protocol
    def raw_update(self, build: Callable[[dns.update.UpdateMessage], None]) -> None:
        update = self._update()
        build(update)
        self._apply_message(update)
