"""What ``failover run`` serves beside the scheduler, each when the policy asks for it.

Order of start (stopped in reverse):

1. checks that need no I/O (the API token rule, alert URLs in the environment): a UsageError
   here exits 2 before anything listens;
2. metrics (always; served by the API): probes and store wrapped, audit entries counted;
   and, with ``metrics.statsd``, the same measurements pushed to StatsD/DogStatsD;
3. alerts (``alerts:``): the dispatcher's lanes, and the notifier as a coordinator listener;
4. the embedded proxy (``proxy:``) — see PROXY below;
5. the admin API (``api:``) last, so that it never answers for a half-started daemon.

After each evaluation one hook feeds the evaluation's own snapshot to the metrics and the
notifier (region down/up, changes made by other processes): in memory, no I/O, so it never
delays the next evaluation or a failover.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from failover import sdnotify
from failover.daemon import Daemon, serve
from failover.errors import FailoverError
from failover.logs import daemon_logging
from failover.metrics import Metrics
from failover.model import DomainOutcome
from failover.policy import Policy

if TYPE_CHECKING:
    from failover.alerts import Notifier
    from failover.statsd import StatsdSink

log = logging.getLogger("failover.services")

Stop = Callable[[], Awaitable[None]]


def state_hook(daemon: Daemon, metrics: Metrics, notifier: Notifier | None) -> Callable[[list[DomainOutcome]], None]:
    """The after-evaluation hook: the evaluation's own snapshot goes to the metrics and the
    notifier (no second pass over the streaks: that would cost the probes the GIL)."""

    def observe(outcomes: list[DomainOutcome]) -> None:
        metrics.observe_decisions(outcomes)
        snap = daemon.coordinator.last_snapshot
        if snap is not None:
            metrics.observe(snap)
            if notifier is not None:
                notifier.observe(outcomes, snap)

    return observe


async def start_services(daemon: Daemon) -> Callable[[], Awaitable[None]]:
    """Start the optional services; return the coroutine that stops them (reverse order)."""
    stops: list[Stop] = []

    async def stop_all() -> None:
        for stop in reversed(stops):
            try:
                await stop()
            except Exception:
                log.exception("error while stopping a service")

    policy = daemon.policy
    daemon_logging()
    try:
        # 1. checks first, before anything listens (and before the first await: see Metrics.instrument)
        token: str | None = None
        if policy.api is not None:
            from failover.api import api_token

            token = api_token(policy.api)
        # 2. metrics
        metrics = Metrics(policy, ready=lambda: daemon.ready)
        metrics.instrument(daemon)
        statsd: StatsdSink | None = None  # metrics.statsd: the same measurements pushed to StatsD
        if policy.metrics is not None and policy.metrics.statsd is not None:
            from failover.statsd import StatsdSink

            statsd = StatsdSink(policy)
            await statsd.start(daemon)
            stops.append(statsd.stop)
        # 3. alerts
        notifier: Notifier | None = None
        if policy.alerts:
            from failover.alerts import Notifier, build_dispatcher

            dispatcher = build_dispatcher(policy, metrics)
            notifier = Notifier(policy, dispatcher.publish)
            await dispatcher.start()
            stops.append(dispatcher.stop)
            daemon.coordinator.events.subscribe(notifier.on_event)
            log.info("alerts: %s", ", ".join(s.name for s in dispatcher.sinks))
        after_evaluation = state_hook(daemon, metrics, notifier)

        # 4. the embedded proxy: routing follows a verdict at once and every decision after it
        if policy.proxy is not None and policy.proxy.kind == "haproxy":  # or an existing HAProxy, the same way
            from failover.passive import DataPathWatch
            from failover.proxy.haproxy import HaproxyFollower

            domain = policy.proxy.domain or policy.domains[0].name
            c = daemon.coordinator
            haproxy = HaproxyFollower(policy.proxy, policy, domain, c.decided_state, c.gateway_statuses)
            hwatch = DataPathWatch(  # HAProxy's failed connects start confirmation probes at once
                lambda: daemon.app.probes, daemon.record_result, domain, policy.health.fall
            )
            haproxy.on_connect_failure(hwatch.suspect)
            stops.append(hwatch.aclose)
            await haproxy.start()
            stops.append(haproxy.stop)
            daemon.after_verdict.append(haproxy)
            daemon.after_evaluation.append(haproxy)
            log.info("proxy: HAProxy backend %s through %s", policy.proxy.backend, policy.proxy.runtime_api)
        elif policy.proxy is not None:
            from failover.passive import DataPathWatch
            from failover.proxy import Proxy
            from failover.proxy.follow import RouteFollower

            proxy = Proxy(policy.proxy, registry=metrics.registry)
            coordinator = daemon.coordinator
            domain = policy.proxy.domain or policy.domains[0].name
            follow = RouteFollower(proxy, policy, domain, coordinator.decided_state, coordinator.gateway_statuses)
            follow()
            try:
                await proxy.start()
            except OSError as exc:
                raise FailoverError(
                    f"proxy.listen: cannot listen on {policy.proxy.listen}: {exc.strerror or exc}"
                ) from None
            drain_time = policy.proxy.drain_time
            stops.append(lambda: proxy.stop(timeout=drain_time))  # SIGTERM: in-flight requests finish
            if statsd is not None:
                statsd.watch_proxy(proxy.stats)
            # the data path's failed connects start confirmation probes at once (failover/passive.py)
            watch = DataPathWatch(lambda: daemon.app.probes, daemon.record_result, domain, policy.health.fall)
            if proxy.on_connect_failure(watch.suspect):
                stops.append(watch.aclose)
            else:
                log.info("proxy with %d workers: detection stays with the scheduled probes", policy.proxy.workers)
            daemon.after_verdict.append(follow)
            daemon.after_evaluation.append(follow)
            log.info("proxy listening on %s:%d", *proxy.address)

        daemon.after_evaluation.append(after_evaluation)
        # 5. the admin API
        if policy.api is not None:
            from failover.api import ApiServer

            server = ApiServer(daemon, policy.api, token, metrics, notifier)
            await server.start()
            stops.append(server.stop)
    except BaseException:
        # ``serve`` only stops the daemon once its services are up: stop everything here, so a
        # refused start (exit 2) leaves no scheduler, socket or store behind.
        await stop_all()
        await daemon.stop()
        await daemon.app.aclose()
        raise
    sdnotify.ready()  # Type=notify (deploy/systemd/failover.service): the API and the proxy listen
    return stop_all


def run_daemon(policy: Policy) -> None:
    """``failover run``: the daemon and its services, on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(policy, start_services))
    else:
        uvloop.run(serve(policy, start_services))
