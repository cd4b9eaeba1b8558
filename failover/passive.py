"""Detection from the data path: the embedded proxy sees a dead gateway before any probe does.

What counts as evidence: a connect to a gateway that is refused, reset or times out under
real traffic starts, at once, ``fall`` confirmation probes of that gateway with the domain's
own checks, ``SPACING`` apart, each recorded like any scheduled probe. The gateway goes down
when they fail as ``fall`` failed probes in a row would, and it comes back only after ``rise``
good probes, as always. A client's bad luck (one reset, a SYN lost on the way) starts the
confirmation but cannot mark anything down: the probes must fail too. One burst per gateway
at a time, and none again within ``COOLDOWN`` of the last, so a flaky path cannot turn the
data path into a probe storm.

Only an in-process relay (``proxy.workers: 1``, the default) reports at once; with worker
processes detection stays with the scheduled probes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from failover.model import ProbeResult, StreakKey
from failover.probes import Probe

log = logging.getLogger("failover.passive")

SPACING = 0.1  # seconds between confirmation probes: fall = 3 confirms within ~0.2 s
COOLDOWN = 1.0  # seconds after a burst before the same gateway can start another


class DataPathWatch:
    def __init__(
        self,
        probes: Callable[[], dict[StreakKey, Probe]],
        record: Callable[[StreakKey, ProbeResult], None],
        domain: str,
        fall: int,
    ) -> None:
        self._probes = probes  # read at each burst: the metrics wrap the probes after start
        self._record = record
        self.domain = domain
        self.fall = fall
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._quiet_until: dict[str, float] = {}
        self.bursts = 0

    def suspect(self, address: str) -> None:
        """The proxy's listener (in the event loop's thread): confirm at once, once at a time."""
        loop = asyncio.get_running_loop()
        if address in self._busy or loop.time() < self._quiet_until.get(address, 0.0):
            return
        # by the probes' own targets, read now: a gateway discovered since start is one of them
        keys = [
            key
            for key, probe in self._probes().items()
            if key.domain == self.domain and probe.target.address == address
        ]
        if not keys:
            return
        self.bursts += 1
        log.info("data path: connects to %s failed; confirming with %d probes now", address, self.fall)
        task = loop.create_task(self._confirm(address, keys), name=f"confirm:{address}")
        self._busy[address] = task

    async def _confirm(self, address: str, keys: list[StreakKey]) -> None:
        loop = asyncio.get_running_loop()
        try:
            for attempt in range(self.fall):
                if attempt:
                    await asyncio.sleep(SPACING)
                probes = self._probes()
                results = await asyncio.gather(*(probes[key].run() for key in keys), return_exceptions=True)
                failed = False
                for key, result in zip(keys, results, strict=True):
                    if isinstance(result, BaseException):
                        result = ProbeResult(False, 0.0, f"{probes[key].label}: probe error {result!r}")
                    failed = failed or not result.ok
                    self._record(key, result)
                if not failed:
                    return  # the gateway answers its checks: the data path's failure was a fluke
        finally:
            self._busy.pop(address, None)
            self._quiet_until[address] = loop.time() + COOLDOWN

    async def aclose(self) -> None:
        for task in list(self._busy.values()):
            task.cancel()
        await asyncio.gather(*self._busy.values(), return_exceptions=True)
