"""The daemon with its services (API, metrics, alerts) in a background thread's event loop, for
synchronous tests that talk to it over HTTP. Its metrics live on a registry of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from failover.app import build_app
from failover.daemon import Daemon
from failover.policy import Policy


class DaemonThread:
    def __init__(self, policy: Policy, reconcile_interval: float = 1.0) -> None:
        self.policy = policy
        self.reconcile_interval = reconcile_interval
        self.loop = asyncio.new_event_loop()
        self.daemon: Daemon | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="daemon")

    def start(self, timeout: float = 20.0) -> DaemonThread:
        self._thread.start()
        if not self._started.wait(timeout):
            raise AssertionError("the daemon did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from failover.services import start_services

        self._stop = asyncio.Event()
        app = build_app(self.policy)
        daemon = Daemon(app, reconcile_interval=self.reconcile_interval)
        self.daemon = daemon
        cleanup: Callable[[], Awaitable[None]] | None = None
        try:
            await daemon.start()
            cleanup = await start_services(daemon)
        except BaseException as exc:  # start_services stopped the daemon itself
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await daemon.stop()
            await cleanup()
            await app.aclose()

    def call(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` in the daemon's loop and return its result."""

        async def run() -> Any:
            return func()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if not self.loop.is_closed() and not self._thread.is_alive():
            self.loop.close()
