"""What the real servers the tests start have in common: stopping our own process, and the
face of an authoritative DNS server with a TSIG key (BIND and PowerDNS)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the process we started, SIGKILL if it lingers; never another pid."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class AuthoritativeServer:
    zone: str
    port: int
    key_name: str
    key_secret: str
    algorithm: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, kw_only=True)
    host: str = field(default="127.0.0.1", kw_only=True)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def soa_ok(self) -> bool:
        try:
            response = dns.query.tcp(dns.message.make_query(self.zone, "SOA"), self.host, port=self.port, timeout=0.5)
        except Exception:
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def query(self, name: str, rdtype: str = "A") -> list[str]:
        """The authoritative answer's values, sorted ([] for NXDOMAIN / no data)."""
        response = dns.query.tcp(dns.message.make_query(name, rdtype), self.host, port=self.port, timeout=2)
        values: list[str] = []
        for rrset in response.answer:
            values.extend(r.to_text().strip('"') for r in rrset)
        return sorted(values)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
