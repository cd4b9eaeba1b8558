"""What a probe is: one check of one gateway for one domain, returning a ProbeResult.

A probe never raises for a failed target: refusals, timeouts and garbage become a failed
result with a one-line reason. Each probe instance serves one (domain, check, gateway) and
keeps its own connection state, so no pool is shared across hundreds of hosts and a slow
gateway cannot delay the others.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from failover.model import ProbeResult


@dataclass(frozen=True)
class Target:
    domain: str
    region: str
    gateway: str
    address: str

    def host(self, port: int) -> str:
        """``address:port`` with IPv6 brackets, for URLs and messages."""
        return f"[{self.address}]:{port}" if ":" in self.address else f"{self.address}:{port}"


class Probe(ABC):
    label: str  # "http:8080/ready", shown in tables and reasons
    interval: float
    timeout: float

    def __init__(self, target: Target) -> None:
        self.target = target

    @abstractmethod
    async def run(self) -> ProbeResult: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass


class WrappedProbe(Probe):
    """A probe around another (metrics, StatsD): the same target, label and timings; closing
    it closes the inner one. Subclasses add what they do with each result in ``run``."""

    def __init__(self, inner: Probe) -> None:
        super().__init__(inner.target)
        self.inner = inner
        self.label = inner.label
        self.interval = inner.interval
        self.timeout = inner.timeout

    async def aclose(self) -> None:
        await self.inner.aclose()


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def ms(self) -> str:
        return f"{self.elapsed * 1000:.0f}ms"
