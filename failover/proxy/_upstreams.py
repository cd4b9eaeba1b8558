"""Which gateway a new connect goes to: the route's tiers, balanced, with passive ejection.

A gateway whose connect failed is ejected for ``ejection_time``: new connects skip it while
another address of any tier is left, and try it anyway when nothing else is (panic mode).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from failover.proxy._route import Route, split_address
from failover.proxy._settings import Settings
from failover.proxy._stats import UpstreamStats

log = logging.getLogger("failover.proxy")


class Upstream:
    """One gateway address of one region, with the counters the balancer and metrics need."""

    __slots__ = (
        "active",
        "address",
        "connections",
        "ejected_until",
        "failures",
        "host",
        "port",
        "region",
        "retries",
    )

    def __init__(self, region: str, address: str, host: str, port: int) -> None:
        self.region = region
        self.address = address
        self.host = host
        self.port = port
        self.active = 0
        self.connections = 0
        self.failures = 0
        self.retries = 0
        self.ejected_until = 0.0

    def __repr__(self) -> str:
        return f"{self.region}/{self.address}"


NO_UPSTREAM: tuple[Upstream, ...] = ()


def _not_started() -> float:
    raise RuntimeError("the proxy is not started")


class Balancer:
    """The upstreams of the current route, and the choice of one for each connect."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock: Callable[[], float] = _not_started  # the loop's time, once the proxy is started
        self.first: tuple[Upstream, ...] = NO_UPSTREAM  # the tier new connections go to
        self._tiers: tuple[tuple[Upstream, ...], ...] = ()
        self._upstreams: dict[tuple[str, str], Upstream] = {}  # kept across routes: counters survive
        self._rr = 0
        self._eject_horizon = 0.0  # no ejection lasts beyond this loop time
        self._least = settings.balance == "least_connections"
        # told of every failed connect (the gateway's address): the data path's signal to health
        self.on_failure: Callable[[str], None] | None = None

    def set_route(self, route: Route) -> None:
        port = self.settings.upstream_port
        tiers: list[tuple[Upstream, ...]] = []
        for region, addresses in route.tiers:
            ups = []
            for address in addresses:
                up = self._upstreams.get((region, address))
                if up is None:
                    host, uport = split_address(address, port)
                    up = self._upstreams[(region, address)] = Upstream(region, address, host, uport)
                if up not in ups:
                    ups.append(up)
            if ups:
                tiers.append(tuple(ups))
        self._tiers = tuple(tiers)
        promoted = set(tiers[0] if tiers else ()) - set(self.first)
        for up in promoted:
            # The coordinator moved traffic here on the probes' word: lift a passive ejection left
            # from an old outage (Envoy's successful_active_health_check_uneject_host).
            up.ejected_until = 0.0
        self.first = tiers[0] if tiers else NO_UPSTREAM

    def pick(self, tried: list[Upstream] | None) -> Upstream | None:
        """The upstream for a new connect: balanced over the first tier, skipping ejected ones.

        After a failure (``tried`` holds what failed): the rest of the first tier, then the
        next tiers, each balanced; then, as a last resort, ejected addresses not yet tried.
        """
        now = math.inf  # "no ejection is in force": every ejected_until <= now
        if self._eject_horizon:
            t = self.clock()
            if t >= self._eject_horizon:
                self._eject_horizon = 0.0
            else:
                now = t
        if tried is None:
            tier = self.first
            n = len(tier)
            if n == 1:
                if tier[0].ejected_until <= now:
                    return tier[0]
            elif n:
                up = self._balance(tier, None, now)
                if up is not None:
                    return up
            tried_: list[Upstream] = []
        else:
            tried_ = tried
        for tier in self._tiers:
            up = self._balance(tier, tried_, now)
            if up is not None:
                return up
        for tier in self._tiers:  # panic mode: everything left is ejected; try it anyway
            for up in tier:
                if up not in tried_:
                    return up
        return None

    def _balance(self, tier: tuple[Upstream, ...], tried: list[Upstream] | None, now: float) -> Upstream | None:
        n = len(tier)
        start = self._rr
        self._rr = start + 1
        if not self._least:
            for k in range(n):
                up = tier[(start + k) % n]
                if up.ejected_until <= now and (not tried or up not in tried):
                    return up
            return None
        best: Upstream | None = None
        for k in range(n):
            up = tier[(start + k) % n]
            if (
                up.ejected_until <= now
                and (not tried or up not in tried)
                and (best is None or up.active < best.active)
            ):
                best = up
        return best

    def connect_failed(self, up: Upstream, exc: BaseException) -> None:
        """Count the failure and eject ``up`` for ``ejection_time`` (from now, again if it already was)."""
        up.failures += 1
        if self.on_failure is not None:
            try:
                self.on_failure(up.address)
            except Exception:  # the relay goes on whatever the listener does
                log.exception("proxy: the connect-failure listener failed")
        eject = self.settings.ejection_time
        if eject <= 0:
            return
        now = self.clock()
        if up.ejected_until <= now:
            log.warning(
                "proxy %s: upstream %s ejected for %gs: %s",
                self.settings.listen, up, eject, _describe(exc),
            )
        up.ejected_until = now + eject
        self._eject_horizon = max(self._eject_horizon, up.ejected_until)

    def next_after_failure(self, failed: Upstream, exc: BaseException, tried: list[Upstream]) -> Upstream | None:
        """Count ``failed``'s failure (and eject it); the upstream to try next, if any is left."""
        self.connect_failed(failed, exc)
        tried.append(failed)
        nxt = self.pick(tried)
        if nxt is not None:
            nxt.retries += 1
        return nxt

    def stats(self, now: float) -> dict[str, UpstreamStats]:
        return {
            f"{up.region}/{up.address}": UpstreamStats(
                region=up.region,
                address=up.address,
                connections=up.connections,
                connect_failures=up.failures,
                retries=up.retries,
                active=up.active,
                ejected=up.ejected_until > now,
            )
            for up in self._upstreams.values()
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.CancelledError):
        return "connect timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
