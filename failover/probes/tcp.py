"""TCP connect probe."""

from __future__ import annotations

import asyncio
import contextlib

from failover.model import ProbeResult
from failover.policy import TcpCheck
from failover.probes.base import Probe, Stopwatch, Target


class TcpProbe(Probe):
    def __init__(self, target: Target, check: TcpCheck) -> None:
        super().__init__(target)
        self.port = check.port
        self.interval, self.timeout = check.interval, check.timeout
        self.label = f"tcp:{check.port}"

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.target.address, self.port), self.timeout)
        except TimeoutError:
            return ProbeResult(False, watch.elapsed, f"{self.label}: connect timed out after {self.timeout:g}s")
        except OSError as exc:
            return ProbeResult(False, watch.elapsed, f"{self.label}: {exc.strerror or exc}")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return ProbeResult(True, watch.elapsed, f"{self.label}: connected in {watch.ms()}")
