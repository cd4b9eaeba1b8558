"""The relay inside one process: the listener, route changes and their drain, idle sweep, stats.

Each accepted connection is a ``Client`` (``_relay.py``); the gateway for its connect comes
from the ``Balancer`` (``_upstreams.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from functools import partial

from failover.proxy._relay import Client, Connections
from failover.proxy._route import Route
from failover.proxy._settings import Settings
from failover.proxy._stats import ProxyStats

log = logging.getLogger("failover.proxy")


class LocalProxy(Connections):
    """The relay in this process and event loop. ``Proxy`` wraps it (and worker processes)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.settings = settings
        self._server: asyncio.AbstractServer | None = None
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
        self._loop = asyncio.get_running_loop()
        self._balancer.clock = self._loop.time
        self._server = await self._loop.create_server(
            partial(Client, self),
            s.host,
            s.port,
            backlog=s.backlog,
            reuse_address=True,
            reuse_port=s.reuse_port or None,
        )
        sockname = self._server.sockets[0].getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))
        if s.idle_timeout > 0:
            self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the proxy is not started")
        return self._address

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection gracefully; abort what is left at ``timeout``."""
        if self._closing:
            return
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._connect_sweeper is not None:
            self._connect_sweeper.cancel()
            self._connect_sweeper = None
        if self._server is not None:
            self._server.close()
        if self._active:
            self._all_closed = self._loop.create_future()
            for conn in list(self._conns):
                conn.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._all_closed), timeout)
            except TimeoutError:
                log.warning("proxy %s: %d connections did not close in %gs; aborting them",
                            self.settings.listen, self._active, timeout)
                for conn in list(self._conns):
                    conn.close(abort=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # -- routing ---------------------------------------------------------------------------

    @property
    def route(self) -> Route:
        return self._route

    def set_route(self, route: Route) -> None:
        """Send new connections by ``route`` from now on; drain connections it leaves behind."""
        if route == self._route:
            return
        self._balancer.set_route(route)
        self._route = route
        self._route_changes += 1
        first = set(self._balancer.first)
        leaving = [c for c in self._conns if c._up not in first]
        drain = self.settings.drain_time
        if leaving and self._loop is not None:
            if drain > 0:
                self._loop.call_later(drain, self._drain, leaving)
            else:
                self._drain(leaving)
        log.info(
            "proxy %s: route %s%s",
            self.settings.listen,
            route,
            f"; {len(leaving)} connections elsewhere close in {drain:g}s" if leaving else "",
        )

    def _drain(self, conns: list[Client]) -> None:
        first = set(self._balancer.first)  # a later route may have put their gateway back first
        for conn in conns:
            if not conn._done and conn._up not in first:
                self._closed_drained += 1
                conn.close()

    # -- idle ------------------------------------------------------------------------------

    def _sweep_interval(self) -> float:
        return min(max(self.settings.idle_timeout / 10, 0.01), 5.0)

    def _sweep(self) -> None:
        now = self._loop.time()
        limit = self.settings.idle_timeout
        for conn in list(self._conns):
            us = conn._us
            seen = conn._n + (us._n if us is not None else 0)
            if seen != conn._seen:
                conn._seen = seen
                conn._quiet = now
            elif now - conn._quiet >= limit and not conn._done:
                self._closed_idle += 1
                conn.close()
        self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    # -- stats -----------------------------------------------------------------------------

    def stats(self) -> ProxyStats:
        now = self._loop.time() if self._loop is not None else math.inf
        return ProxyStats(
            connections_active=self._active,
            connections_total=self._total,
            rejected_max_connections=self._rejected_max,
            rejected_no_upstream=self._rejected_no_upstream,
            closed_idle=self._closed_idle,
            closed_drained=self._closed_drained,
            bytes_from_clients=self._bytes_in + sum(c._n for c in self._conns),
            bytes_to_clients=self._bytes_out + sum(c._us._n for c in self._conns if c._us is not None),
            route_changes=self._route_changes,
            upstreams=self._balancer.stats(now),
        )
