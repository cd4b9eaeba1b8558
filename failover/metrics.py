"""Prometheus metrics of one daemon, on a registry of its own.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` units, base units).
Everything is fed from the edges, never from the engine:

* probes: each ``Probe`` is wrapped by ``InstrumentedProbe`` (latency histogram, results by
  outcome, probes in flight);
* domain events: ``Metrics.on_event`` subscribes to the coordinator's events (primary
  changes, adapter changes, their latency and errors, audit entries by kind);
* the store: ``instrument_store`` counts ``StoreError`` by operation;
* state after each evaluation: ``Metrics.observe`` keeps the last snapshot, read by a collector
  at scrape time (health per gateway/region/domain, primary, epoch, overrides, drains).

``render()`` returns this registry followed by prometheus-client's default registry (process
metrics, and ``failover_proxy_*`` when the embedded proxy registers there).

Metric names (see docs/grafana-dashboard.json for their use)::

    failover_info{service,observer,version}                       gauge 1
    failover_ready                                                 gauge 0/1
    failover_probe_duration_seconds{domain,region,gateway,check}   histogram
    failover_probe_results_total{domain,region,gateway,check,outcome}   outcome=success|failure
    failover_probes_in_flight                                      gauge
    failover_gateway_up{domain,region,gateway}                     gauge 1/0 (absent while unknown)
    failover_region_up{domain,region}                              gauge 1/0 (quorum verdict)
    failover_region_gateways_up{domain,region}                     gauge
    failover_region_gateways{domain,region}                        gauge
    failover_primary{domain,region}                                gauge 1 for the primary
    failover_secondary{domain,region}                              gauge 1 for the secondary
    failover_epoch{domain}                                         gauge
    failover_override_active{scope,region}                         gauge 1 per active override
    failover_region_drained{region}                                gauge 1 per drained region
    failover_evaluations_total                                     counter
    failover_last_evaluation_timestamp_seconds                     gauge
    failover_decisions_total{domain,kind}                          counter (keep, hold, failover, ...)
    failover_primary_changes_total{domain,kind}                    counter (elected, failover, failback, override)
    failover_adapter_changes_total{domain,adapter}                 counter (applied and verified)
    failover_adapter_errors_total{domain,adapter,error}            counter, error=error|lost_race
    failover_adapter_apply_duration_seconds{domain,adapter}        histogram
    failover_store_errors_total{operation}                         counter
    failover_audit_entries_total{kind}                             counter
    failover_alerts_sent_total{sink,event}                         counter
    failover_alert_failures_total{sink,event}                      counter (gave up)
    failover_alert_retries_total{sink}                             counter
    failover_alerts_dropped_total{sink}                            counter (queue full: oldest dropped)
    failover_alerts_deduplicated_total{sink,event}                 counter
    failover_alert_queue_length{sink}                              gauge
    failover_alert_delivery_duration_seconds{sink}                 histogram (first try to outcome)
    failover_api_requests_total{method,route,status}               counter
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from failover import events as ev
from failover.coordinator.audit import audit_kind
from failover.errors import StoreError
from failover.model import DomainOutcome, ProbeResult, Snapshot, Status, StreakKey
from failover.policy import Policy
from failover.probes.base import Probe, WrappedProbe
from failover.store.abc import Store

if TYPE_CHECKING:
    from failover.daemon import Daemon

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CHANGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _version() -> str:
    try:
        return version("failover")
    except PackageNotFoundError:
        return "unknown"


class Metrics:
    def __init__(
        self,
        policy: Policy,
        registry: CollectorRegistry | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.policy = policy
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._ready = ready or (lambda: False)
        self._snapshot: Snapshot | None = None
        self._primaries: dict[str, tuple[str | None, str | None, int]] = {}  # domain -> primary, secondary, epoch
        self._region_of = {gw.name: r.name for r in policy.regions for gw in r.gateways}
        r = self.registry
        info = Gauge(
            "failover_info",
            "The coordinator: service, observer, version",
            ["service", "observer", "version"],
            registry=r,
        )
        info.labels(policy.service, policy.observer, _version()).set(1)
        Gauge("failover_ready", "1 once every target is probed and one evaluation is done", registry=r).set_function(
            lambda: 1.0 if self._ready() else 0.0
        )
        probe = ["domain", "region", "gateway", "check"]
        self.probe_duration = Histogram(
            "failover_probe_duration_seconds", "Probe latency", probe, buckets=PROBE_BUCKETS, registry=r
        )
        self.probe_results = Counter(
            "failover_probe_results_total", "Probe results by outcome", [*probe, "outcome"], registry=r
        )
        self.probes_in_flight = Gauge("failover_probes_in_flight", "Scheduled probes running now", registry=r)
        self.evaluations = Counter("failover_evaluations_total", "Evaluations done by the daemon", registry=r)
        self.last_evaluation = Gauge(
            "failover_last_evaluation_timestamp_seconds", "When the daemon last evaluated (unix time)", registry=r
        )
        self.decisions = Counter(
            "failover_decisions_total", "Decisions of the daemon's evaluations by kind", ["domain", "kind"], registry=r
        )
        self.primary_changes = Counter(
            "failover_primary_changes_total",
            "Changes of primary by kind (elected, failover, failback, override)",
            ["domain", "kind"],
            registry=r,
        )
        self.adapter_changes = Counter(
            "failover_adapter_changes_total", "Traffic changes applied and verified", ["domain", "adapter"], registry=r
        )
        self.adapter_errors = Counter(
            "failover_adapter_errors_total",
            "Adapter failures (error: refused/unreachable; lost_race: the fencing marker moved)",
            ["domain", "adapter", "error"],
            registry=r,
        )
        self.adapter_duration = Histogram(
            "failover_adapter_apply_duration_seconds",
            "Apply plus verify of one traffic change",
            ["domain", "adapter"],
            buckets=CHANGE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "failover_store_errors_total", "State store calls that failed", ["operation"], registry=r
        )
        self.audit_entries = Counter("failover_audit_entries_total", "Audit entries written", ["kind"], registry=r)
        self.alerts_sent = Counter("failover_alerts_sent_total", "Alerts delivered", ["sink", "event"], registry=r)
        self.alert_failures = Counter(
            "failover_alert_failures_total", "Alerts given up on after retries", ["sink", "event"], registry=r
        )
        self.alert_retries = Counter("failover_alert_retries_total", "Alert delivery retries", ["sink"], registry=r)
        self.alerts_dropped = Counter(
            "failover_alerts_dropped_total",
            "Alerts dropped because the queue was full (oldest first)",
            ["sink"],
            registry=r,
        )
        self.alerts_deduplicated = Counter(
            "failover_alerts_deduplicated_total",
            "Repeats not sent within the de-duplication window",
            ["sink", "event"],
            registry=r,
        )
        self.alert_queue = Gauge("failover_alert_queue_length", "Alerts waiting", ["sink"], registry=r)
        self.alert_duration = Histogram(
            "failover_alert_delivery_duration_seconds",
            "From the first attempt to delivery or giving up",
            ["sink"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=r,
        )
        self.api_requests = Counter(
            "failover_api_requests_total", "Admin API requests", ["method", "route", "status"], registry=r
        )
        r.register(_StateCollector(self))

    # -- wiring ---------------------------------------------------------------------------
    def instrument(self, daemon: Daemon) -> None:
        """Wrap the daemon's probes and store and listen to its audit log. Call it before the
        event loop runs the first probe (``start_services`` does, before its first await)."""
        for key, probe in list(daemon.app.probes.items()):
            if not isinstance(probe, InstrumentedProbe):
                daemon.app.probes[key] = InstrumentedProbe(probe, key, self)
        daemon.probe_wrappers.append(lambda key, probe: InstrumentedProbe(probe, key, self))  # discovered later
        daemon.coordinator.store = instrument_store(daemon.coordinator.store, self)
        daemon.coordinator.events.subscribe(self.on_event)
        # read from the schedule at scrape time: two locked updates per probe cost more than this
        self.probes_in_flight.set_function(lambda: daemon.probe_schedule.in_flight if daemon.probe_schedule else 0)

    def render(self) -> bytes:
        """This registry, then the default one (process metrics, the proxy's when it registers there)."""
        own = generate_latest(self.registry)
        return own if self.registry is REGISTRY else own + generate_latest(REGISTRY)

    # -- feeds ----------------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        """Event subscriber: runs in whichever thread publishes; prometheus-client is thread-safe."""
        kind = audit_kind(event)
        if kind is not None:
            self.audit_entries.labels(kind).inc()
        domain = event.domain or "*"
        match event:
            case ev.PrimaryChanged():
                self.primary_changes.labels(domain, str(event.kind)).inc()
            case ev.AdapterApplied():
                self.adapter_changes.labels(domain, event.adapter).inc()
                self.adapter_duration.labels(domain, event.adapter).observe(event.seconds)
            case ev.AdapterFailed():
                self.adapter_errors.labels(domain, event.adapter, "error").inc()
            case ev.RaceLost():
                self.adapter_errors.labels(domain, event.adapter, "lost_race").inc()

    def observe_decisions(self, outcomes: Sequence[DomainOutcome]) -> None:
        """After each daemon evaluation (no I/O): count it and its decisions, note the primaries."""
        self.evaluations.inc()
        self.last_evaluation.set(time.time())
        for outcome in outcomes:
            state = outcome.decision.state
            self.decisions.labels(state.domain, outcome.decision.kind).inc()
            self._primaries[state.domain] = (state.primary, state.secondary, state.epoch)

    def observe(self, snapshot: Snapshot) -> None:
        """Keep the health, overrides and drains after an evaluation for the next scrape."""
        self._snapshot = snapshot

    def _discovered_region(self, gateway: str) -> str:
        """A gateway found by ``gateways_from`` after start: looked up in the current sets."""
        return next((r.name for r in self.policy.regions for gw in r.gateways if gw.name == gateway), "")

    def collect_state(self) -> Iterable[Metric]:
        snap = self._snapshot
        gateway_up = GaugeMetricFamily(
            "failover_gateway_up",
            "1 when the gateway passes its checks for the domain, 0 when down",
            labels=["domain", "region", "gateway"],
        )
        region_up = GaugeMetricFamily(
            "failover_region_up",
            "Region verdict for the domain (quorum of observers): 1 up, 0 down",
            labels=["domain", "region"],
        )
        region_gw_up = GaugeMetricFamily(
            "failover_region_gateways_up", "Gateways of the region up for the domain", labels=["domain", "region"]
        )
        region_gw = GaugeMetricFamily("failover_region_gateways", "Gateways of the region", labels=["domain", "region"])
        primary = GaugeMetricFamily(
            "failover_primary", "1 for the domain's primary region", labels=["domain", "region"]
        )
        secondary = GaugeMetricFamily(
            "failover_secondary", "1 for the domain's secondary region", labels=["domain", "region"]
        )
        epoch = GaugeMetricFamily("failover_epoch", "Fencing epoch of the domain's decision", labels=["domain"])
        override = GaugeMetricFamily(
            "failover_override_active",
            "1 per active manual override (scope: a domain or *)",
            labels=["scope", "region"],
        )
        drained = GaugeMetricFamily("failover_region_drained", "1 per drained region", labels=["region"])
        for domain, (first, second, number) in list(self._primaries.items()):
            if first:
                primary.add_metric([domain, first], 1.0)
            if second:
                secondary.add_metric([domain, second], 1.0)
            epoch.add_metric([domain], float(number))
        if snap is not None:
            for domain, gateways in snap.gateways.items():
                for gateway, (status, _reason) in gateways.items():
                    if status is not Status.UNKNOWN:
                        region = self._region_of.get(gateway) or self._discovered_region(gateway)
                        gateway_up.add_metric([domain, region, gateway], 1.0 if status is Status.UP else 0.0)
            for domain, regions in snap.health.items():
                for region, verdict in regions.items():
                    if verdict.status is not Status.UNKNOWN:
                        region_up.add_metric([domain, region], 1.0 if verdict.status is Status.UP else 0.0)
                    region_gw_up.add_metric([domain, region], float(verdict.up))
                    region_gw.add_metric([domain, region], float(verdict.total))
            for scope, item in snap.overrides.items():
                if item.active(snap.now):
                    override.add_metric([scope, item.region], 1.0)
            for region in sorted(snap.drained):
                drained.add_metric([region], 1.0)
        yield from (gateway_up, region_up, region_gw_up, region_gw, primary, secondary, epoch, override, drained)


class _StateCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics.collect_state()

    def describe(self) -> Iterable[Metric]:
        return []


class InstrumentedProbe(WrappedProbe):
    """A probe that reports each result to the metrics; otherwise the probe it wraps."""

    def __init__(self, inner: Probe, key: StreakKey, metrics: Metrics) -> None:
        super().__init__(inner)
        self.key = key
        self.metrics = metrics
        # The label children, resolved once: at thousands of probes a second, ``labels()`` on
        # every result was a measurable share of a probe's CPU.
        labels = (key.domain, inner.target.region, key.gateway, key.check)
        self._duration = metrics.probe_duration.labels(*labels)
        self._success = metrics.probe_results.labels(*labels, "success")
        self._failure = metrics.probe_results.labels(*labels, "failure")

    async def run(self) -> ProbeResult:
        result = await self.inner.run()
        self._duration.observe(max(result.latency, 0.0))
        (self._success if result.ok else self._failure).inc()
        return result


class _ErrorCountingStore:
    """Delegates every call to the store; counts the ``StoreError`` s by operation."""

    def __init__(self, store: Store, counter: Counter) -> None:
        self._store = store
        self._counter = counter

    @property
    def wrapped(self) -> Store:
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr
        counter = self._counter

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except StoreError:
                counter.labels(name).inc()
                raise

        return call


def instrument_store(store: Store, metrics: Metrics) -> Store:
    if isinstance(store, _ErrorCountingStore):
        return store
    return cast(Store, _ErrorCountingStore(store, metrics.store_errors))
