"""What ``failover demo`` shows: the client sending requests through the proxy, and the view.

Kept apart from the run itself (``failover/demo.py``) so that file stays about the phases.
"""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

DOMAIN = "api.demo.test"


class Client:
    """A client sending one request per 20 ms through the proxy (a new connection each time),
    as users holding a stale DNS answer would: counts answers per region and the longest gap.

    It stops on ``stop()``, not only on cancellation: on Python 3.11 ``asyncio.wait_for`` loses
    a cancel that lands in the loop iteration where its inner await finished, and a client
    that missed its cancel kept the demo's shutdown waiting for minutes. Its timeouts use
    ``asyncio.timeout``, which never loses one."""

    def __init__(self, port: int, timeout: float = 1.0) -> None:
        self.port = port
        self.timeout = timeout
        self.ok: dict[str, int] = {}
        self.failed = 0
        self.longest_gap = 0.0
        self._last_ok: float | None = None
        self._stopping = False

    async def one(self) -> None:
        answer = b""
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET /ready HTTP/1.1\r\nHost: api.demo.test\r\nConnection: close\r\n\r\n")
                answer = await reader.read()
        except (OSError, TimeoutError):
            answer = b""
        finally:
            if writer is not None:
                writer.close()
        now = time.monotonic()
        if answer.startswith(b"HTTP/1.1 200") and b"ok " in answer:
            region = answer.rsplit(b"ok ", 1)[1].split(b"-")[0].decode()
            self.ok[region] = self.ok.get(region, 0) + 1
            if self._last_ok is not None:
                self.longest_gap = max(self.longest_gap, now - self._last_ok)
            self._last_ok = now
        elif self._last_ok is not None:  # failures before the first election do not count
            self.failed += 1

    async def run(self, seconds: float) -> None:
        """Send requests until ``stop()`` or for ``seconds`` at most."""
        end = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < end:
            await self.one()
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._stopping = True

    def summary(self) -> str:
        per_region = ", ".join(f"{r} {n}" for r, n in sorted(self.ok.items())) or "none yet"
        gap = f"{self.longest_gap * 1000:.0f}ms"
        return f"{sum(self.ok.values())} ok ({per_region}), {self.failed} failed, longest gap {gap}"


class View:
    """Live table on a terminal; plain timestamped lines otherwise."""

    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self.live = live
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.phase = "starting"
        self.records: tuple[str, ...] = ()
        self.primary = "-"
        self.health: dict[str, str] = {}
        self.client: Client | None = None

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.2f}s] {text}"
        self.lines = [*self.lines[-11:], line]
        if not self.live:
            self.console.print(line, highlight=False, soft_wrap=True)

    def render(self) -> Table:
        table = Table(title=f"failover demo: {self.phase}", expand=False)
        table.add_column("what")
        table.add_column("now")
        table.add_row("primary", f"[bold]{self.primary}[/bold]")
        table.add_row(f"{DOMAIN} A", ", ".join(self.records) or "(none)")
        for name, status in sorted(self.health.items()):
            colour = {"up": "green", "down": "red"}.get(status, "yellow")
            table.add_row(name, f"[{colour}]{status}[/{colour}]")
        if self.client is not None:
            table.add_row("through the proxy", self.client.summary())
        table.add_row("events", "\n".join(self.lines) or "-")
        return table


async def tick(live_view: Live, view: View) -> None:
    """Redraw the live table ten times a second until cancelled."""
    while True:
        live_view.update(view.render())
        await asyncio.sleep(0.1)
