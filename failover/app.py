"""The one factory: build the store, adapters, probes and coordinator a policy asks for.

Faces call this; tests construct the pieces directly instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from failover.adapters import Adapter, build_adapter
from failover.coordinator import Coordinator
from failover.model import ProbeResult, StreakKey
from failover.policy import Policy
from failover.probes import Probe, build_probes
from failover.store import Store, open_store


@dataclass
class App:
    policy: Policy
    store: Store
    coordinator: Coordinator
    probes: dict[StreakKey, Probe]

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self.probes.values()))
        for adapters in self.coordinator.adapters.values():
            for adapter in adapters:
                adapter.close()
        self.store.close()


def build_adapters(policy: Policy) -> dict[str, list[Adapter]]:
    return {d.name: [build_adapter(block, d.name, policy) for block in d.traffic] for d in policy.domains}


def build_app(policy: Policy, persist: bool = True, with_adapters: bool = True) -> App:
    store = open_store(policy.state, policy.observer, policy.report_freshness())
    try:
        adapters = build_adapters(policy) if with_adapters else {}
    except BaseException:
        store.close()
        raise
    probes = build_probes(policy)
    coordinator = Coordinator(policy, store, adapters, persist=persist, targets=probes.keys())
    return App(policy, store, coordinator, probes)


async def probe_once(probes: Mapping[StreakKey, Probe]) -> dict[StreakKey, ProbeResult]:
    keys = list(probes)
    results = await asyncio.gather(*(probes[k].run() for k in keys))
    return dict(zip(keys, results, strict=True))


async def probe_until_known(app: App, max_rounds: int | None = None) -> None:
    """Probe every target and record it; repeat for targets without a verdict yet, up to
    max(rise, fall) rounds, so a first cron run can already decide."""
    rounds = max_rounds or max(app.policy.health.rise, app.policy.health.fall)
    pending = dict(app.probes)
    for attempt in range(rounds):
        app.coordinator.record(await probe_once(pending))
        unknown = set(app.coordinator.unknown_targets())
        pending = {k: p for k, p in app.probes.items() if k in unknown}
        if not pending:
            return
        if attempt + 1 < rounds:
            spacing = min(min(p.interval for p in pending.values()), 0.5)
            await asyncio.sleep(spacing)
