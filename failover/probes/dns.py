"""DNS probe: resolve a name through a server (default: the gateway itself) and compare."""

from __future__ import annotations

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from failover.model import ProbeResult
from failover.policy import DnsCheck, host_port
from failover.probes.base import Probe, Stopwatch, Target


class DnsProbe(Probe):
    def __init__(self, target: Target, check: DnsCheck) -> None:
        super().__init__(target)
        self.check = check
        self.interval, self.timeout = check.interval, check.timeout
        self.server, self.port = host_port(check.server, 53) if check.server else (target.address, check.port)
        self.qname = check.qname or target.domain
        self.label = f"dns:{check.rdtype} {self.qname}"

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        query = dns.message.make_query(self.qname, self.check.rdtype)
        try:
            response = await dns.asyncquery.udp(query, self.server, port=self.port, timeout=self.timeout)
        except dns.exception.Timeout:
            return ProbeResult(False, watch.elapsed, f"{self.label}: no answer in {self.timeout:g}s")
        except (OSError, ValueError, dns.exception.DNSException) as exc:
            return ProbeResult(False, watch.elapsed, f"{self.label}: {exc}")
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            return ProbeResult(False, watch.elapsed, f"{self.label}: {dns.rcode.to_text(rcode)}")
        values = {r.to_text().strip('"') for rrset in response.answer for r in rrset}
        if not values:
            return ProbeResult(False, watch.elapsed, f"{self.label}: empty answer")
        missing = [v for v in self.check.expect if v not in values]
        if missing:
            return ProbeResult(False, watch.elapsed, f"{self.label}: answer lacks {', '.join(missing)}")
        return ProbeResult(True, watch.elapsed, f"{self.label}: {len(values)} records in {watch.ms()}")
