"""TCP connect probe: a connection accepted within the timeout, then closed."""

from __future__ import annotations

import asyncio

from failover.model import ProbeResult
from failover.policy import TcpCheck
from failover.probes._deadline import watch_deadline
from failover.probes.base import Probe, Stopwatch, Target


class TcpProbe(Probe):
    def __init__(self, target: Target, check: TcpCheck) -> None:
        super().__init__(target)
        self.port = check.port
        self.interval, self.timeout = check.interval, check.timeout
        self.label = f"tcp:{check.port}"

    async def run(self) -> ProbeResult:
        clock = Stopwatch()
        watch = watch_deadline(self.timeout)
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(
                asyncio.Protocol, self.target.address, self.port
            )
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            return ProbeResult(False, clock.elapsed, f"{self.label}: connect timed out after {self.timeout:g}s")
        except OSError as exc:
            return ProbeResult(False, clock.elapsed, f"{self.label}: {exc.strerror or exc}")
        finally:
            watch.finished = True
        transport.close()
        return ProbeResult(True, clock.elapsed, f"{self.label}: connected in {clock.ms()}")
