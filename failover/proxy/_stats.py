"""Proxy counters as plain data, and the Prometheus collector that exposes them.

The hot path only adds to plain ints on its own objects (bytes are added once per
connection, when it closes); the collector reads them when Prometheus scrapes. With
several worker processes, each worker sends its snapshot to the parent, which sums them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class UpstreamStats:
    """Counters of one upstream address (one gateway of one region)."""

    region: str
    address: str
    connections: int = 0  # connections relayed to it (connect succeeded)
    connect_failures: int = 0  # refused, reset or timed out connects
    retries: int = 0  # connects to it that were a retry after another upstream failed
    active: int = 0  # connections open (or being opened) right now
    ejected: bool = False  # skipped after a connect failure, for proxy.ejection_time

    def add(self, other: UpstreamStats) -> None:
        self.connections += other.connections
        self.connect_failures += other.connect_failures
        self.retries += other.retries
        self.active += other.active
        self.ejected = self.ejected or other.ejected


@dataclass
class ProxyStats:
    """A snapshot of the proxy's counters (summed over worker processes)."""

    connections_active: int = 0
    connections_total: int = 0  # accepted, including the rejected ones
    rejected_max_connections: int = 0
    rejected_no_upstream: int = 0  # every upstream failed, or the route was empty
    closed_idle: int = 0
    closed_drained: int = 0
    bytes_from_clients: int = 0  # relayed client -> upstream, counted at connection close
    bytes_to_clients: int = 0  # relayed upstream -> client, counted at connection close
    route_changes: int = 0
    workers: int = 1
    upstreams: dict[str, UpstreamStats] = field(default_factory=dict)  # key: "region/address"

    def add(self, other: ProxyStats) -> None:
        for f in fields(self):
            if f.name in ("upstreams", "workers", "route_changes"):
                continue
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.route_changes = max(self.route_changes, other.route_changes)
        for key, up in other.upstreams.items():
            mine = self.upstreams.get(key)
            if mine is None:
                self.upstreams[key] = UpstreamStats(up.region, up.address)
                mine = self.upstreams[key]
            mine.add(up)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "upstreams"
        }
        out["upstreams"] = {
            key: {f.name: getattr(up, f.name) for f in fields(up)} for key, up in self.upstreams.items()
        }
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProxyStats:
        raw_ups = data.get("upstreams", {})
        ups = {
            str(k): UpstreamStats(**v)
            for k, v in (raw_ups.items() if isinstance(raw_ups, dict) else [])
        }
        names = {f.name for f in fields(cls)} - {"upstreams"}
        return cls(**{k: v for k, v in data.items() if k in names}, upstreams=ups)  # type: ignore[arg-type]


class ProxyCollector(Collector):
    """``failover_proxy_*`` metrics, read from a stats callable at scrape time."""

    def __init__(self, snapshot: Callable[[], ProxyStats], listen: str) -> None:
        self._snapshot = snapshot
        self._listen = listen

    def describe(self) -> Iterable[Metric]:
        return list(self._families(ProxyStats()))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._snapshot()))

    def _families(self, s: ProxyStats) -> Iterator[Metric]:
        listen = self._listen
        gauge = GaugeMetricFamily(
            "failover_proxy_connections_active", "Client connections open now", labels=["listen"]
        )
        gauge.add_metric([listen], s.connections_active)
        yield gauge
        counter = CounterMetricFamily(
            "failover_proxy_connections", "Client connections accepted", labels=["listen"]
        )
        counter.add_metric([listen], s.connections_total)
        yield counter
        counter = CounterMetricFamily(
            "failover_proxy_connections_rejected",
            "Client connections closed at once (max_connections reached, or no upstream reachable)",
            labels=["listen", "reason"],
        )
        counter.add_metric([listen, "max_connections"], s.rejected_max_connections)
        counter.add_metric([listen, "no_upstream"], s.rejected_no_upstream)
        yield counter
        counter = CounterMetricFamily(
            "failover_proxy_connections_closed",
            "Connections closed by the proxy (idle timeout, or drain after a route change)",
            labels=["listen", "reason"],
        )
        counter.add_metric([listen, "idle"], s.closed_idle)
        counter.add_metric([listen, "drained"], s.closed_drained)
        yield counter
        counter = CounterMetricFamily(
            "failover_proxy_bytes",
            "Bytes relayed, counted when a connection closes",
            labels=["listen", "direction"],
        )
        counter.add_metric([listen, "client_to_upstream"], s.bytes_from_clients)
        counter.add_metric([listen, "upstream_to_client"], s.bytes_to_clients)
        yield counter
        counter = CounterMetricFamily(
            "failover_proxy_route_changes", "Routes applied (set_route with a new route)", labels=["listen"]
        )
        counter.add_metric([listen], s.route_changes)
        yield counter
        labels = ["listen", "region", "upstream"]
        chosen = CounterMetricFamily(
            "failover_proxy_upstream_connections", "Connections relayed to an upstream", labels=labels
        )
        failures = CounterMetricFamily(
            "failover_proxy_upstream_connect_failures",
            "Connects to an upstream that were refused, reset or timed out",
            labels=labels,
        )
        retries = CounterMetricFamily(
            "failover_proxy_upstream_retries",
            "Connects to an upstream made after another upstream failed for the same client",
            labels=labels,
        )
        active = GaugeMetricFamily(
            "failover_proxy_upstream_connections_active", "Connections open to an upstream", labels=labels
        )
        ejected = GaugeMetricFamily(
            "failover_proxy_upstream_ejected",
            "1 while an upstream is skipped after a connect failure",
            labels=labels,
        )
        regions: dict[str, int] = {}
        for up in s.upstreams.values():
            key = [listen, up.region, up.address]
            chosen.add_metric(key, up.connections)
            failures.add_metric(key, up.connect_failures)
            retries.add_metric(key, up.retries)
            active.add_metric(key, up.active)
            ejected.add_metric(key, 1 if up.ejected else 0)
            regions[up.region] = regions.get(up.region, 0) + up.connections
        by_region = CounterMetricFamily(
            "failover_proxy_region_connections",
            "Connections relayed to each region's gateways",
            labels=["listen", "region"],
        )
        for region, count in sorted(regions.items()):
            by_region.add_metric([listen, region], count)
        yield from (chosen, failures, retries, active, ejected, by_region)
