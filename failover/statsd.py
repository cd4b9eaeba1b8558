"""Push the daemon's measurements to a StatsD server or a DogStatsD agent (``metrics.statsd``).

The same measurements as the Prometheus metrics (``failover.metrics``) as StatsD counters, gauges
and timers: probe latency and outcome, region and gateway health, the primary per domain, the
elections, adapter changes and errors, and the embedded proxy's traffic (docs/metrics.md lists
them). With ``protocol: dogstatsd`` the dimensions are tags (``failover.primary:1|g|#domain:
api.example.com,region:east,env:prod``); with ``statsd`` they are appended to the name, dots and
other separators turned into ``_`` (``failover.primary.api_example_com.east:1|g``).

The client is ``datadog``'s ``DogStatsd``: maintained by Datadog (the protocol's owner), typed,
thread-safe, many lines per datagram, non-blocking sends, sample rates. It writes a plain StatsD
line whenever a metric has no tags, so it serves both protocols (origin detection, which would add
``|c:``, is off; the ``DD_ENV``-style tags it reads from the environment are kept for dogstatsd
and dropped for statsd). ``statsd`` (pystatsd) has no tags; ``aiodogstatsd`` has had no release
since 2021.

The hot path: a probe result adds to an int of its own (the counts are summed here and sent
every ``interval``) and hands its latency to the client's sampled ``timing``. Measured per probe
with 2,000 targets (bench in docs/metrics.md): ~1.5 µs at ``sample_rate`` 0.01, ~2 µs at 0.1, and
at 1.0 ~4 µs (statsd) or ~8-11 µs (dogstatsd: the client re-checks the tags of each line). Events,
health, primaries and proxy traffic cost nothing per probe; the sends run in a worker thread.

Wiring (``failover.services``): ``sink = StatsdSink(policy)``, ``await sink.start(daemon)``,
``sink.watch_proxy(proxy.stats)`` when the proxy runs, and ``await sink.stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from datadog.dogstatsd.base import DogStatsd

from failover import events as ev
from failover.model import DomainOutcome, ProbeResult, Status, StreakKey
from failover.policy import Policy
from failover.probes.base import Probe, WrappedProbe

if TYPE_CHECKING:
    from failover.daemon import Daemon
    from failover.policy._metrics import StatsdBlock
    from failover.proxy import ProxyStats

log = logging.getLogger("failover.statsd")

Dims = tuple[tuple[str, str], ...]  # (name, value) of each dimension, in order
Line = tuple[str, list[str] | None]  # metric name, tags (None: plain statsd, or no tags)
Primaries = dict[str, tuple[str | None, int]]  # domain -> primary, epoch
_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9_-]")
_UNSAFE_TAG = re.compile(r"[^\w\-:/.]")  # what the client would replace (it caches only 512 tag sets)
_PROXY_TOTALS = (  # ProxyStats attribute -> metric: StatsD counters are what was added since the last send
    ("connections_total", "proxy.connections", ()),
    ("route_changes", "proxy.route_changes", ()),
    ("rejected_max_connections", "proxy.rejected", (("reason", "max_connections"),)),
    ("rejected_no_upstream", "proxy.rejected", (("reason", "no_upstream"),)),
    ("bytes_from_clients", "proxy.bytes", (("direction", "client_to_upstream"),)),
    ("bytes_to_clients", "proxy.bytes", (("direction", "upstream_to_client"),)),
)


class _OncePerMinute(logging.Filter):
    """The client logs a warning per failed datagram (several a second while the receiver is
    down): the same message passes once a minute."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now, key = time.monotonic(), str(record.msg)
        if now - self._last.get(key, -60.0) < 60.0:
            return False
        self._last[key] = now
        return True


_client_log = logging.getLogger("datadog.dogstatsd")
if not any(isinstance(f, _OncePerMinute) for f in _client_log.filters):
    _client_log.addFilter(_OncePerMinute())


class Names:
    """Metric name and tags of a measurement, per protocol, computed once per dimension set."""

    def __init__(self, tagged: bool) -> None:
        self.tagged = tagged
        self._cache: dict[tuple[str, Dims], Line] = {}

    def __call__(self, metric: str, dims: Dims) -> Line:
        line = self._cache.get((metric, dims))
        if line is None:
            if len(self._cache) > 50_000:  # discovered gateways come and go: never grow without bound
                self._cache.clear()
            if self.tagged:
                line = (metric, [f"{k}:{_UNSAFE_TAG.sub('_', v)}" for k, v in dims] or None)
            else:
                line = (".".join([metric, *(_UNSAFE_SEGMENT.sub("_", v) for _, v in dims)]), None)
            self._cache[(metric, dims)] = line
        return line


def _probe_dims(key: StreakKey, region: str) -> Dims:
    return (("domain", key.domain), ("region", region), ("gateway", key.gateway), ("check", key.check))


class StatsdSink:
    """Counts and samples as things happen; sends them, with the gauges, every ``interval``."""

    def __init__(self, policy: Policy, settings: StatsdBlock | None = None) -> None:
        block = settings or (policy.metrics.statsd if policy.metrics is not None else None)
        if block is None:
            raise ValueError("the policy has no metrics.statsd block")
        self.policy = policy
        self.settings = block
        self.names = Names(tagged=block.protocol == "dogstatsd")
        self.client: DogStatsd | None = None  # once the address resolves
        self._daemon: Daemon | None = None
        self._proxy_stats: Callable[[], ProxyStats] | None = None
        self._proxy_before: ProxyStats | None = None
        self._tallies: dict[StreakKey, ProbeTally] = {}
        self._sample_rate = block.sample_rate
        self._lock = threading.Lock()  # events arrive from the evaluation's threads
        self._counts: dict[tuple[str, Dims], float] = {}
        self._timings: list[tuple[str, Dims, float]] = []
        self._primaries: Primaries = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending = threading.Lock()  # one send at a time (the periodic one, the last one)

    # -- wiring ---------------------------------------------------------------------------
    async def start(self, daemon: Daemon) -> None:
        """Listen to the daemon (probes, events, decisions), then start the periodic send."""
        self._daemon = daemon
        self._loop = asyncio.get_running_loop()
        # before the first await: no probe result is missed from here on
        for key, probe in list(daemon.app.probes.items()):
            daemon.app.probes[key] = self.wrap(key, probe)
        daemon.probe_wrappers.append(self.wrap)  # the probes of gateways discovered later
        daemon.coordinator.events.subscribe(self.on_event)
        daemon.after_evaluation.append(self.observe_decisions)
        await asyncio.to_thread(self._connect)
        self._task = asyncio.create_task(self._send_forever(), name="statsd")
        host, port = self.settings.host_port
        log.info("statsd: %s to %s:%d every %gs", self.settings.protocol, host, port, self.settings.interval)

    def watch_proxy(self, stats: Callable[[], ProxyStats]) -> None:
        """The embedded proxy's counters (read on the event loop, each ``interval``)."""
        self._proxy_stats = stats

    async def stop(self) -> None:
        """Unhook, send what is counted, close the socket."""
        if self._daemon is not None:
            self._daemon.coordinator.events.unsubscribe(self.on_event)
            with contextlib.suppress(ValueError):
                self._daemon.after_evaluation.remove(self.observe_decisions)
            with contextlib.suppress(ValueError):
                self._daemon.probe_wrappers.remove(self.wrap)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        client, self.client = self.client, None
        if client is not None:
            await asyncio.to_thread(client.stop, 2.0)
            client.close_socket()

    def _connect(self) -> bool:
        """Resolve the address here, in a worker thread: the client would otherwise resolve it
        at its first send, which may be on the event loop."""
        if self.client is not None:
            return True
        host, port = self.settings.host_port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("statsd: cannot resolve %s (%s): will try again in %gs", host, exc, self.settings.interval)
            return False
        infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first, like the client itself
        client = DogStatsd(
            host=str(infos[0][4][0]),
            port=port,
            namespace=self.settings.prefix,
            constant_tags=[f"{k}:{v}" for k, v in self.settings.tags.items()],
            disable_buffering=False,  # many lines per datagram, flushed by the client's thread
            disable_telemetry=True,  # no datadog.dogstatsd.client.* metrics of its own
            origin_detection_enabled=False,  # no |c:<container> field: tags say where metrics come from
            socket_timeout=0,  # never wait: a full socket buffer drops the datagram
        )
        if not self.names.tagged:
            client.constant_tags = []  # plain StatsD: no DD_ENV / DATADOG_TAGS from the environment
        self.client = client
        return True

    # -- feeds ----------------------------------------------------------------------------
    def tally(self, key: StreakKey, region: str) -> ProbeTally:
        """The counts of one probe target (made once: a dict lookup per probe costs ~1 µs)."""
        tally = self._tallies.get(key)
        if tally is None:
            dims = _probe_dims(key, region)
            tally = self._tallies[key] = ProbeTally(dims, self.names("probe.latency", dims))
        return tally

    def wrap(self, key: StreakKey, probe: Probe) -> Probe:
        return TimedProbe(probe, self.tally(key, probe.target.region), self)

    def record(self, tally: ProbeTally, result: ProbeResult) -> None:
        """On the event loop's thread: an int, and a timer sample the client keeps or drops."""
        if result.ok:
            tally.successes += 1
        else:
            tally.failures += 1
        client = self.client
        if client is not None:
            client.timing(tally.timer[0], max(result.latency, 0.0) * 1000.0, tally.timer[1], self._sample_rate)

    def on_event(self, event: ev.Event) -> None:
        """Event subscriber: runs in whichever thread publishes."""
        domain = event.domain or "*"
        match event:
            case ev.PrimaryChanged():
                self._count("primary.changes", (("domain", domain), ("kind", str(event.kind))))
                self._send_soon()  # an election shows at once, not at the next interval
            case ev.AdapterApplied():
                dims = (("domain", domain), ("adapter", event.adapter))
                self._count("adapter.changes", dims)
                with self._lock:
                    self._timings.append(("adapter.apply", dims, event.seconds))
            case ev.AdapterFailed():
                self._count("adapter.errors", (("domain", domain), ("adapter", event.adapter), ("error", "error")))
            case ev.RaceLost():
                self._count("adapter.errors", (("domain", domain), ("adapter", event.adapter), ("error", "lost_race")))

    def observe_decisions(self, outcomes: list[DomainOutcome]) -> None:
        """After-evaluation hook (event loop): the primary per domain; a move is sent at once."""
        moved = False
        for outcome in outcomes:
            state = outcome.decision.state
            moved = moved or self._primaries.get(state.domain, (None, 0))[0] != state.primary
            self._primaries[state.domain] = (state.primary, state.epoch)
        if moved:
            self._send_soon()

    def _count(self, metric: str, dims: Dims) -> None:
        with self._lock:
            self._counts[(metric, dims)] = self._counts.get((metric, dims), 0.0) + 1.0

    def _send_soon(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- sending --------------------------------------------------------------------------
    async def _send_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("statsd: sending failed")

    async def flush(self) -> None:
        """Send now what is counted, and the gauges (on the event loop that feeds the probes)."""
        # what the event loop owns is taken on it; the snapshot and the sends go to a thread
        probes: list[tuple[Dims, int, int]] = []
        for tally in self._tallies.values():
            if tally.successes or tally.failures:
                probes.append((tally.dims, tally.successes, tally.failures))
                tally.successes = tally.failures = 0
        proxy = self._proxy_stats() if self._proxy_stats is not None else None
        await asyncio.to_thread(self._send, probes, proxy, dict(self._primaries))

    def _send(self, probes: list[tuple[Dims, int, int]], proxy: ProxyStats | None, primaries: Primaries) -> None:
        with self._sending:
            if not self._connect():
                return
            client, names = self.client, self.names
            assert client is not None
            with self._lock:
                counts, self._counts = self._counts, {}
                timings, self._timings = self._timings, []
            for (metric, dims), value in counts.items():
                _put(client.increment, names(metric, dims), value)
            for metric, dims, seconds in timings:
                _put(client.timing, names(metric, dims), seconds * 1000.0)
            for dims, successes, failures in probes:
                for outcome, value in (("success", successes), ("failure", failures)):
                    if value:
                        _put(client.increment, names("probe.results", (*dims, ("outcome", outcome))), value)
            for domain, (primary, epoch) in primaries.items():
                for region in self.policy.regions:
                    line = names("primary", (("domain", domain), ("region", region.name)))
                    _put(client.gauge, line, 1 if region.name == primary else 0)
                _put(client.gauge, names("epoch", (("domain", domain),)), epoch)
            self._send_health(client)
            if proxy is not None:
                self._send_proxy(client, proxy)
            client.flush()

    def _send_health(self, client: DogStatsd) -> None:
        if self._daemon is None:
            return
        coordinator = self._daemon.coordinator
        try:  # the last evaluation's (at most a reconcile interval old): no second pass over the streaks
            last = coordinator.last_snapshot
            snap = last if last is not None else coordinator.snapshot()
        except Exception as exc:  # the store may be away: the counters still go out
            log.warning("statsd: no snapshot for the health gauges: %s", exc)
            return
        region_of = {gw.name: r.name for r in self.policy.regions for gw in r.gateways}
        for domain, regions in snap.health.items():
            for region, verdict in regions.items():
                dims: Dims = (("domain", domain), ("region", region))
                if verdict.status is not Status.UNKNOWN:
                    _put(client.gauge, self.names("region.up", dims), 1 if verdict.status is Status.UP else 0)
                _put(client.gauge, self.names("region.gateways_up", dims), verdict.up)
                _put(client.gauge, self.names("region.gateways", dims), verdict.total)
        for domain, gateways in snap.gateways.items():
            for gateway, (status, _reason) in gateways.items():
                if status is not Status.UNKNOWN:
                    dims = (("domain", domain), ("region", region_of.get(gateway, "")), ("gateway", gateway))
                    _put(client.gauge, self.names("gateway.up", dims), 1 if status is Status.UP else 0)

    def _send_proxy(self, client: DogStatsd, now: ProxyStats) -> None:
        before, self._proxy_before = self._proxy_before, now
        _put(client.gauge, self.names("proxy.connections_active", ()), now.connections_active)
        for attribute, metric, dims in _PROXY_TOTALS:
            added = getattr(now, attribute) - (getattr(before, attribute) if before is not None else 0)
            if added > 0:
                _put(client.increment, self.names(metric, dims), added)
        by_region: dict[str, int] = {}
        for key, up in now.upstreams.items():
            old = before.upstreams.get(key) if before is not None else None
            by_region[up.region] = by_region.get(up.region, 0) + up.connections - (old.connections if old else 0)
            failures = up.connect_failures - (old.connect_failures if old else 0)
            if failures > 0:
                line = self.names("proxy.upstream_connect_failures", (("region", up.region), ("upstream", up.address)))
                _put(client.increment, line, failures)
        for region, added in sorted(by_region.items()):
            if added > 0:
                _put(client.increment, self.names("proxy.region_connections", (("region", region),)), added)


def _put(method: Callable[[str, float, list[str] | None], object], line: Line, value: float) -> None:
    """``client.increment``, ``gauge`` or ``timing``: name, value, tags."""
    method(line[0], value, line[1])


class ProbeTally:
    """Results of one probe target since the last send, and its timer's name and tags."""

    __slots__ = ("dims", "failures", "successes", "timer")

    def __init__(self, dims: Dims, timer: Line) -> None:
        self.dims = dims
        self.timer = timer
        self.successes = 0
        self.failures = 0


class TimedProbe(WrappedProbe):
    """A probe that hands each result to the sink; otherwise the probe it wraps."""

    def __init__(self, inner: Probe, tally: ProbeTally, sink: StatsdSink) -> None:
        super().__init__(inner)
        self.tally = tally
        self.sink = sink

    async def run(self) -> ProbeResult:
        result = await self.inner.run()
        self.sink.record(self.tally, result)
        return result
