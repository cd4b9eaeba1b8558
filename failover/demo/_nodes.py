"""The parts of ``failover demo --cluster`` (and of ``bench/quorum.py``) besides the phases.

* ``CutProbe`` wraps one coordinator's probe of one gateway: while ``cut`` is set it fails at
  once, as a probe does from an observer whose network path to that gateway is broken, and
  the gateway itself is untouched (the other observers still reach it).
* ``Node`` is one coordinator: its own policy file (its ``observer``), ``App`` (store, etcd
  session, adapters, probes) and ``Daemon``, in this process.
* ``ZoneWatch`` polls the zone file and keeps every change of what it serves (the addresses
  and the marker), with the time it was first seen: what the phases assert on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from failover.adapters.abc import Marker
from failover.adapters.zonefile import ZonefileAdapter
from failover.app import App, build_app
from failover.daemon import Daemon
from failover.errors import AdapterError
from failover.model import ProbeResult, Status
from failover.policy import load_policy
from failover.probes.base import Probe
from failover.store.etcd import EtcdStore

OBSERVERS = ("east", "west", "witness")


class CutProbe(Probe):
    """A probe that fails at once while ``cut`` is set (a broken path from this observer)."""

    def __init__(self, inner: Probe, observer: str) -> None:
        super().__init__(inner.target)
        self.inner = inner
        self.label, self.interval, self.timeout = inner.label, inner.interval, inner.timeout
        self.observer = observer
        self.cut = False

    async def run(self) -> ProbeResult:
        if self.cut:
            return ProbeResult(False, 0.0, f"{self.label}: unreachable from {self.observer} (its network is cut)")
        return await self.inner.run()

    async def aclose(self) -> None:
        await self.inner.aclose()


def cluster_policy(
    observer: str,
    regions: dict[str, dict[str, str]],
    domains: dict[str, Path],
    port: int,
    etcd: str,
    prefix: str,
    *,
    interval: str,
    timeout: str,
    state: dict[str, str],
    service: str = "demo-api",
    kind: str = "http",
) -> dict[str, Any]:
    """One coordinator's policy: the same for all three but for ``observer``. ``domains`` maps
    each domain to its zone file (zone: the domain's parent). ``kind``: http (GET /ready) or tcp."""
    check = {"kind": kind, "port": port, "interval": interval, "timeout": timeout}
    if kind == "http":
        check["path"] = "/ready"
    return {
        "service": service,
        "observer": observer,
        "regions": [
            {"name": name, "priority": 10 * (i + 1), "gateways": [{"name": n, "address": a} for n, a in gws.items()]}
            for i, (name, gws) in enumerate(regions.items())
        ],
        "domains": [
            {
                "name": domain,
                "checks": [check],
                "traffic": [{"kind": "zonefile", "path": str(path), "zone": domain.split(".", 1)[1] + ".", "ttl": 30}],
            }
            for domain, path in domains.items()
        ],
        "health": {"rise": 2, "fall": 3, "min_healthy_gateways": 1},
        "election": {"failback": "manual", "hold_down": "0s"},
        "observers": list(OBSERVERS),
        "state": {"url": f"etcd://{etcd}{prefix}", **state},
    }


@dataclass
class Node:
    """One coordinator: its own policy file, store and etcd session, probes and daemon."""

    name: str
    app: App
    daemon: Daemon
    cuts: dict[tuple[str, str], CutProbe] = field(default_factory=dict)  # (domain, gateway) -> its probe
    crashed: bool = False

    @classmethod
    def build(cls, name: str, policy: dict[str, Any], folder: Path, reconcile: float = 2.0) -> Node:
        path = folder / f"policy-{name}.yaml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        return cls.load(name, path, reconcile)

    @classmethod
    def load(cls, name: str, path: Path, reconcile: float = 2.0) -> Node:
        app = build_app(load_policy(path))
        node = cls(name, app, Daemon(app, reconcile_interval=reconcile))
        for key, probe in list(app.probes.items()):  # the daemon looks its probes up here at each run
            wrapped = CutProbe(probe, name)
            app.probes[key] = wrapped
            node.cuts[(key.domain, key.gateway)] = wrapped
        return node

    def cut(self, domain: str, gateways: list[str], on: bool) -> None:
        for gateway in gateways:
            self.cuts[(domain, gateway)].cut = on

    def sees(self, domain: str, gateways: list[str], status: Status) -> bool:
        """Every one of ``gateways`` has ``status`` in this coordinator's own verdicts (memory)."""
        statuses = self.app.coordinator.gateway_statuses(domain)
        return all(statuses.get(g) is status for g in gateways)

    def leading(self) -> int | None:
        """The fencing token while this coordinator may act (memory only), else None."""
        return None if self.crashed else self.app.store.leading()

    async def crash(self) -> None:
        """Stop probing, voting and renewing, without resigning: the lease must expire."""
        self.crashed = True
        await self.daemon.stop()

    async def stop(self) -> None:
        """A clean stop of the daemon (the store's close resigns); nothing left to stop after a crash."""
        if not self.crashed:
            await self.daemon.stop()

    async def close(self) -> None:
        """Close probes, adapters and the store; a crashed node's store only drops its client
        (a resign would hand over at once, which a crashed process never does)."""
        store = self.app.store
        if self.crashed and isinstance(store, EtcdStore):
            await asyncio.gather(*(p.aclose() for p in self.app.probes.values()))
            store.client.close()
            return
        await self.app.aclose()


@dataclass(frozen=True)
class Served:
    at: float  # monotonic, when first seen
    addresses: tuple[str, ...]
    marker: Marker | None

    def describe(self) -> str:
        served = ", ".join(self.addresses) or "no address"
        if self.marker is None:
            return f"{served} (no marker)"
        m = self.marker
        return f"{served} (marker: epoch {m.epoch}, primary {m.primary}, by {m.by}, token {m.token})"


class ZoneWatch:
    """Every change of what one zone file serves for the domain, polled every ``every`` s."""

    def __init__(self, adapter: ZonefileAdapter, every: float = 0.02) -> None:
        self.adapter = adapter
        self.every = every
        self.seen: list[Served] = []

    def read(self) -> Served:
        try:
            live = self.adapter.read() if self.adapter.path.exists() else None
        except AdapterError:  # never half a file (it is replaced atomically); a read error: same as before
            return self.seen[-1] if self.seen else Served(time.monotonic(), (), None)
        if live is None:
            return Served(time.monotonic(), (), None)
        return Served(time.monotonic(), live.addresses, live.marker)

    @property
    def now(self) -> Served:
        return self.seen[-1] if self.seen else self.poll()

    def poll(self) -> Served:
        current = self.read()
        last = self.seen[-1] if self.seen else None
        if last is None or (last.addresses, last.marker) != (current.addresses, current.marker):
            self.seen.append(current)
            return current
        return last

    def since(self, start: float) -> list[Served]:
        """What was served from ``start`` on: the state at ``start`` and every change after it."""
        before = [s for s in self.seen if s.at <= start]
        return before[-1:] + [s for s in self.seen if s.at > start]

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self.every)
