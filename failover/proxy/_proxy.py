"""``Proxy``: the face the daemon uses. One process (in the caller's loop) or several workers."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry

from failover.proxy._local import LocalProxy
from failover.proxy._route import Route
from failover.proxy._settings import Settings
from failover.proxy._stats import ProxyCollector, ProxyStats
from failover.proxy._workers import WorkerPool

if TYPE_CHECKING:
    from failover.policy import Proxy as ProxyConfig

log = logging.getLogger("failover.proxy")


class Proxy:
    """The embedded per-region L4 proxy.

    Built from the policy's ``proxy`` block and started inside a running asyncio loop::

        proxy = Proxy(policy.proxy)
        await proxy.start()
        proxy.set_route(Route((("us-east-1", ("192.0.2.10", "192.0.2.11")),
                               ("eu-west-1", ("198.51.100.10",)))))
        ...
        await proxy.stop()

    Contract:

    * ``set_route`` is cheap, synchronous and idempotent: an equal route changes nothing.
      It may be called before ``start``, and from any thread (it hops to the loop's). From
      the call on, new connections follow the new route; open connections to a gateway that
      is not in the new route's first tier are closed ``drain_time`` later (unless a later
      route puts it back first in line).
    * Until a route is set, the route is empty and new connections are closed at once.
    * ``workers == 1`` relays in the caller's loop (uvloop or asyncio: the relay has its own
      epoll, and the loop watches only that; Linux only);
      ``workers > 1`` starts that many processes sharing the port (``SO_REUSEPORT``), each
      following every route; they stop with ``stop()`` and when this process dies.
    * ``stop`` stops accepting, closes every connection gracefully (flushing what is
      buffered) and aborts what is still open after ``timeout`` seconds.
    * Metrics (``failover_proxy_*``) are registered on ``registry`` while started; pass
      ``registry=None`` to keep them out of Prometheus (``stats()`` still works).
    """

    def __init__(
        self,
        config: ProxyConfig | Settings,
        *,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.settings = config if isinstance(config, Settings) else Settings.from_policy(config)
        self._impl: LocalProxy | WorkerPool = (
            LocalProxy(self.settings) if self.settings.workers == 1 else WorkerPool(self.settings)
        )
        self._registry = registry
        self._collector: ProxyCollector | None = None
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("the proxy is already started")
        await self._impl.start()
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        if self._registry is not None:
            host, port = self.address
            listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            collector = ProxyCollector(self.stats, listen)
            self._registry.register(collector)
            self._collector = collector
        log.info("proxy listening on %s:%d (%s, %d worker%s), relaying to port %d",
                 *self.address, self.settings.balance, self.settings.workers,
                 "s" if self.settings.workers > 1 else "", self.settings.upstream_port)

    async def stop(self, timeout: float = 5.0) -> None:
        if self._collector is not None and self._registry is not None:
            self._registry.unregister(self._collector)
            self._collector = None
        await self._impl.stop(timeout)

    def set_route(self, route: Route) -> None:
        """New connections follow ``route`` from now on. Safe to call from any thread."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread and not loop.is_closed():
            loop.call_soon_threadsafe(self._impl.set_route, route)
        else:
            self._impl.set_route(route)

    def on_connect_failure(self, listener: Callable[[str], None]) -> bool:
        """Tell ``listener`` (in the loop's thread) the address of every gateway whose connect
        failed (refused, reset, timed out): the data path's early signal of a dead gateway.
        Only in-process relays (``workers == 1``) can tell at once; False with workers."""
        if isinstance(self._impl, LocalProxy):
            self._impl.balancer.on_failure = listener
            return True
        return False

    @property
    def route(self) -> Route:
        return self._impl.route

    @property
    def address(self) -> tuple[str, int]:
        """The address listened on (with the real port when the policy said port 0)."""
        return self._impl.address

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (empty with ``workers == 1``)."""
        return self._impl.pids if isinstance(self._impl, WorkerPool) else []

    def stats(self) -> ProxyStats:
        """Counters now; with workers, as of their last report (at most a second old)."""
        return self._impl.stats()
