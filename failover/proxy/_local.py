"""The relay inside one process: start and stop, route changes and their drain, idle sweep, stats.

The listeners and the event dispatch are the ``Reactor`` (``_reactor.py``); each accepted
connection is a ``Relay`` (``_relay.py``); the gateway for its connect comes from the
``Balancer`` (``_upstreams.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import select

from failover.errors import ProxyError
from failover.proxy._reactor import Reactor, listening_sockets
from failover.proxy._relay import Relay
from failover.proxy._route import Route
from failover.proxy._settings import Settings
from failover.proxy._stats import ProxyStats

log = logging.getLogger("failover.proxy")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class LocalProxy(Reactor):
    """The relay in this process and event loop. ``Proxy`` wraps it (and worker processes)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.settings = settings
        self._route = Route()
        self._sweeper: asyncio.TimerHandle | None = None
        self._address: tuple[str, int] | None = None
        # counters (plain ints; read by stats())
        self._closed_idle = 0
        self._closed_drained = 0
        self._route_changes = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if not hasattr(select, "epoll"):
            raise ProxyError("the embedded proxy needs Linux (epoll)")
        loop = asyncio.get_running_loop()
        if _is_ip(s.host):
            socks = listening_sockets(s.host, s.port, s.backlog, s.reuse_port)
        else:  # a name: resolving it may block
            socks = await loop.run_in_executor(None, listening_sockets, s.host, s.port, s.backlog, s.reuse_port)
        sockname = socks[0].getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))
        self.open(loop, socks)
        if s.idle_timeout > 0:
            self._sweeper = self.loop.call_later(self._sweep_interval(), self._sweep)

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the proxy is not started")
        return self._address

    async def stop(self, timeout: float = 5.0) -> None:
        """Drain: stop accepting, let the connections end on their own; near ``timeout`` close
        what is left gracefully, and abort what is still there at ``timeout``. A request in
        flight when SIGTERM came gets its answer (``drain_time`` is the operator's bound)."""
        if self._closing:
            return
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.connect_sweeper is not None:
            self.connect_sweeper.cancel()
            self.connect_sweeper = None
        self.stop_accepting()
        if self._active:
            self._all_closed = self.loop.create_future()
            closing = min(1.0, timeout / 4)  # the last part of the budget: FINs, then aborts
            try:
                await asyncio.wait_for(asyncio.shield(self._all_closed), timeout - closing)
            except TimeoutError:
                for conn in list(self._conns):
                    conn.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._all_closed), closing)
            except TimeoutError:
                log.warning("proxy %s: %d connections did not close in %gs; aborting them",
                            self.settings.listen, self._active, timeout)
                for conn in list(self._conns):
                    conn.close(abort=True)
        self.shut()

    # -- routing ---------------------------------------------------------------------------

    @property
    def route(self) -> Route:
        return self._route

    def set_route(self, route: Route) -> None:
        """Send new connections by ``route`` from now on; drain connections it leaves behind."""
        if route == self._route:
            return
        self.balancer.set_route(route)
        self._route = route
        self._route_changes += 1
        first = set(self.balancer.first)
        leaving = [c for c in self._conns if c._up not in first]
        drain = self.settings.drain_time
        if leaving and self.loop is not None:
            if drain > 0:
                self.loop.call_later(drain, self._drain, leaving)
            else:
                self._drain(leaving)
        log.info(
            "proxy %s: route %s%s",
            self.settings.listen,
            route,
            f"; {len(leaving)} connections elsewhere close in {drain:g}s" if leaving else "",
        )

    def _drain(self, conns: list[Relay]) -> None:
        first = set(self.balancer.first)  # a later route may have put their gateway back first
        for conn in conns:
            if not conn._done and conn._up not in first:
                self._closed_drained += 1
                conn.close()

    # -- idle ------------------------------------------------------------------------------

    def _sweep_interval(self) -> float:
        return min(max(self.settings.idle_timeout / 10, 0.01), 5.0)

    def _sweep(self) -> None:
        now = self.loop.time()
        limit = self.settings.idle_timeout
        for conn in list(self._conns):
            seen = conn._n + conn._m
            if seen != conn._seen:
                conn._seen = seen
                conn._quiet = now
            elif now - conn._quiet >= limit and not conn._done:
                if conn._closing:  # closed earlier but its peer takes nothing: give up on flushing
                    conn.close(abort=True)
                else:
                    self._closed_idle += 1
                    conn.close()
        self._sweeper = self.loop.call_later(self._sweep_interval(), self._sweep)

    # -- stats -----------------------------------------------------------------------------

    def stats(self) -> ProxyStats:
        now = self.loop.time() if self.loop is not None else math.inf
        return ProxyStats(
            connections_active=self._active,
            connections_total=self._total,
            rejected_max_connections=self._rejected_max,
            rejected_no_upstream=self.rejected_no_upstream,
            closed_idle=self._closed_idle,
            closed_drained=self._closed_drained,
            bytes_from_clients=self._bytes_in + sum(c._n for c in self._conns),
            bytes_to_clients=self._bytes_out + sum(c._m for c in self._conns),
            route_changes=self._route_changes,
            upstreams=self.balancer.stats(now),
        )
