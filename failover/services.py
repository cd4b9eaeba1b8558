"""What ``failover run`` serves beside the scheduler, each when the policy asks for it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from failover.daemon import Daemon

log = logging.getLogger("failover.services")


async def start_services(daemon: Daemon) -> Callable[[], Awaitable[None]]:
    """Start the optional services; return the coroutine that stops them (reverse order)."""
    stops: list[Callable[[], Awaitable[None]]] = []

    async def stop_all() -> None:
        for stop in reversed(stops):
            try:
                await stop()
            except Exception:
                log.exception("error while stopping a service")

    return stop_all
