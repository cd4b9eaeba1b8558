"""TLS certificate probe: days to expiry of the certificate served for the domain (SNI).

Expired fails the check; inside ``warn_before`` passes with a warning (an alert, not a
failover: moving traffic does not renew a certificate).
"""

from __future__ import annotations

import asyncio
import ssl
import time

from cryptography import x509

from failover.model import ProbeResult
from failover.policy import TlsCheck
from failover.probes.base import Probe, Stopwatch, Target


class TlsProbe(Probe):
    def __init__(self, target: Target, check: TlsCheck) -> None:
        super().__init__(target)
        self.port, self.warn_before = check.port, check.warn_before
        self.interval, self.timeout = check.interval, check.timeout
        self.label = f"tls:{check.port}"
        # We read the expiry of whatever is served; trust is the HTTP check's business.
        self._context = ssl.create_default_context()
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.target.address, self.port, ssl=self._context, server_hostname=self.target.domain
                ),
                self.timeout,
            )
        except TimeoutError:
            return ProbeResult(False, watch.elapsed, f"{self.label}: handshake timed out after {self.timeout:g}s")
        except (OSError, ssl.SSLError) as exc:
            return ProbeResult(False, watch.elapsed, f"{self.label}: {getattr(exc, 'strerror', None) or exc}")
        try:
            sslobj = writer.get_extra_info("ssl_object")
            der = sslobj.getpeercert(binary_form=True) if sslobj else None
        finally:
            writer.close()
        if not der:
            return ProbeResult(False, watch.elapsed, f"{self.label}: no certificate served")
        not_after = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
        left = not_after - time.time()
        days = left / 86400
        if left <= 0:
            return ProbeResult(False, watch.elapsed, f"{self.label}: certificate for {self.target.domain} expired")
        warning = None
        if left < self.warn_before:
            warning = f"certificate for {self.target.domain} on {self.target.gateway} expires in {days:.1f}d"
        return ProbeResult(
            True, watch.elapsed, f"{self.label}: certificate valid {days:.0f}d", warning, cert_days_left=days
        )
