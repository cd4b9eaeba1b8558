"""``failover demo``: the whole system on this machine, with nothing to set up.

Two regions of real HTTP gateways on loopback (east: 127.0.0.11-12, west: 127.0.0.21-22),
a sqlite store and a zone file in a temporary folder, the real daemon, and the embedded
proxy with a client sending requests through it the whole time. It waits for the
first election, kills east's gateways, measures how long detection and the DNS shift take,
brings east back, watches the automatic failback, and prints a summary. Runs unattended
(no TTY, ``CI=true``) with plain lines instead of the live view.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from failover.adapters.zonefile import ZonefileAdapter
from failover.app import build_app
from failover.daemon import Daemon
from failover.localgw import LocalGateway
from failover.model import AuditEntry, Status
from failover.policy import load_policy
from failover.proxy import Proxy
from failover.proxy.follow import RouteFollower

DOMAIN = "api.demo.test"
EAST = {"east-a": "127.0.0.11", "east-b": "127.0.0.12"}
WEST = {"west-a": "127.0.0.21", "west-b": "127.0.0.22"}


def _free_port(hosts: list[str]) -> int:
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port on loopback")


def demo_policy(folder: Path, port: int, proxy_port: int) -> dict[str, Any]:
    return {
        "service": "demo-api",
        "observer": "east",
        "regions": [
            {"name": "east", "priority": 10, "gateways": [{"name": n, "address": a} for n, a in EAST.items()]},
            {"name": "west", "priority": 20, "gateways": [{"name": n, "address": a} for n, a in WEST.items()]},
        ],
        "domains": [
            {
                "name": DOMAIN,
                "checks": [{"kind": "http", "port": port, "path": "/ready", "interval": "500ms", "timeout": "400ms"}],
                "traffic": [{"kind": "zonefile", "path": "demo.test.zone", "zone": "demo.test.", "ttl": 30}],
            }
        ],
        "health": {"rise": 2, "fall": 3, "min_healthy_gateways": 1},
        "election": {"failback": "auto", "failback_after": "3s", "hold_down": "2s", "max_failovers_per_hour": 10},
        "state": {"url": "sqlite:///state.db"},
        "proxy": {
            "listen": f"127.0.0.1:{proxy_port}",
            "upstream_port": port,
            "connect_timeout": "300ms",
            "drain_time": "2s",
        },
    }


class Client:
    """A client sending one request per 20 ms through the proxy (a new connection each time),
    as users holding a stale DNS answer would: counts answers per region and the longest gap."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok: dict[str, int] = {}
        self.failed = 0
        self.longest_gap = 0.0
        self._last_ok: float | None = None

    async def one(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1.0)
            writer.write(b"GET /ready HTTP/1.1\r\nHost: api.demo.test\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 1.0)
            writer.close()
        except (OSError, TimeoutError):
            answer = b""
        now = time.monotonic()
        if answer.startswith(b"HTTP/1.1 200") and b"ok " in answer:
            region = answer.rsplit(b"ok ", 1)[1].split(b"-")[0].decode()
            self.ok[region] = self.ok.get(region, 0) + 1
            if self._last_ok is not None:
                self.longest_gap = max(self.longest_gap, now - self._last_ok)
            self._last_ok = now
        elif self._last_ok is not None:  # failures before the first election do not count
            self.failed += 1

    async def run(self, limit: int = 6000) -> None:
        for _ in range(limit):  # bounded: two minutes at most
            await self.one()
            await asyncio.sleep(0.02)

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


async def _wait(what: str, condition: Callable[[], bool], deadline: float) -> float:
    """Poll ``condition`` until true; return when it became true. Raise after ``deadline`` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"demo: {what} did not happen within {deadline:g}s")


async def _demo(console: Console, live: bool, speed: float) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="failover-demo-"))
    port = _free_port(list(EAST.values()) + list(WEST.values()))
    policy_file = folder / "policy.yaml"
    proxy_port = _free_port(["127.0.0.1"])
    policy_file.write_text(yaml.safe_dump(demo_policy(folder, port, proxy_port), sort_keys=False))
    policy = load_policy(policy_file)
    gateways = {name: LocalGateway(name, addr, port) for name, addr in {**EAST, **WEST}.items()}
    for gateway in gateways.values():
        await gateway.start()
    app = build_app(policy)
    zone = ZonefileAdapter(DOMAIN, folder / "demo.test.zone", "demo.test.")
    view = View(console, live)
    view.say(f"policy, sqlite store and zone file in {folder}")
    view.say(f"gateways: east {', '.join(EAST.values())}; west {', '.join(WEST.values())} (port {port})")

    def on_audit(entry: AuditEntry) -> None:
        if entry.kind in ("elected", "failover", "failback", "applied", "error", "lost_race"):
            view.say(f"{entry.kind}: {entry.detail}")

    app.coordinator.listeners.append(on_audit)
    daemon = Daemon(app, reconcile_interval=2.0)

    def refresh(_: object = None) -> None:
        snap = app.coordinator.snapshot()
        view.health = {f"{r} ({DOMAIN})": str(v.status) for r, v in snap.health[DOMAIN].items()}
        state = app.store.get_state(DOMAIN)
        view.primary = state.primary if state and state.primary else "-"
        view.records = zone.read().addresses if zone.path.exists() else ()

    daemon.after_evaluation.append(refresh)
    east = tuple(sorted(EAST.values()))
    west = tuple(sorted(WEST.values()))

    def serving(addresses: tuple[str, ...]) -> Callable[[], bool]:
        return lambda: zone.path.exists() and zone.read().addresses == addresses

    assert policy.proxy is not None
    proxy = Proxy(policy.proxy, registry=None)
    follow = RouteFollower(proxy, app.coordinator, DOMAIN)
    daemon.after_verdict.append(follow)
    daemon.after_evaluation.append(follow)
    await proxy.start()
    view.say(f"proxy on 127.0.0.1:{proxy_port}: a client sends a request every 20ms through it")
    client = Client(proxy_port)
    view.client = client
    traffic = asyncio.create_task(client.run())

    figures: dict[str, float] = {}
    await daemon.start()
    live_view = Live(view.render(), console=console, refresh_per_second=8, transient=False) if live else None
    ticker: asyncio.Task[None] | None = None
    if live_view is not None:
        live_view.start()

        async def tick() -> None:
            while True:
                live_view.update(view.render())
                await asyncio.sleep(0.1)

        ticker = asyncio.create_task(tick())
    try:
        view.phase = "electing"
        t0 = time.monotonic()
        await _wait("the first election", serving(east), 20)
        figures["first_publish_s"] = time.monotonic() - t0
        view.say(f"east elected and published in {figures['first_publish_s']:.2f}s")
        await asyncio.sleep(1.5 * speed)

        view.phase = "east fails"
        view.say("killing east's gateways (connections now refused)")
        killed = time.monotonic()
        for name in EAST:
            await gateways[name].stop()
        detected = await _wait(
            "detection of east down",
            lambda: all(app.coordinator.gateway_statuses(DOMAIN).get(g) is Status.DOWN for g in EAST),
            20,
        )
        shifted = await _wait("the DNS shift to west", serving(west), 20)
        figures["detection_s"] = detected - killed
        figures["failover_s"] = shifted - killed
        view.say(
            f"east detected down after {figures['detection_s']:.2f}s; DNS on west after "
            f"{figures['failover_s']:.2f}s (interval 0.5s, fall 3)"
        )
        await asyncio.sleep(1.5 * speed)

        view.phase = "east recovers"
        view.say("bringing east back (failback: auto after 3s healthy, hold-down 2s)")
        back = time.monotonic()
        for name in EAST:
            await gateways[name].start()
        returned = await _wait("the failback to east", serving(east), 30)
        figures["failback_s"] = returned - back
        view.say(f"failed back to east {figures['failback_s']:.2f}s after it came back")
        view.phase = "done"
        await asyncio.sleep(0.5 * speed)
        view.say(f"through the proxy: {client.summary()}")
        figures["proxy_failed"] = client.failed
        figures["proxy_ok"] = sum(client.ok.values())
        figures["proxy_gap_ms"] = client.longest_gap * 1000
    finally:
        traffic.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await traffic
        if ticker is not None:
            ticker.cancel()
        if live_view is not None:
            live_view.update(view.render())
            live_view.stop()
        await daemon.stop()
        await proxy.stop()
        await app.aclose()
        for gateway in gateways.values():
            await gateway.stop()
    return figures


def run_demo(speed: float = 1.0) -> int:
    console = Console()
    live = console.is_terminal and not os.environ.get("CI")
    try:
        figures = asyncio.run(_demo(console, live, speed))
    except TimeoutError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    console.print(
        "\n[bold]summary[/bold]: east was elected, failed, and came back.\n"
        f"  first publish      {figures['first_publish_s']:.2f}s\n"
        f"  detection          {figures['detection_s']:.2f}s after the kill\n"
        f"  DNS shift to west  {figures['failover_s']:.2f}s after the kill\n"
        f"  failback to east   {figures['failback_s']:.2f}s after recovery\n"
        f"  through the proxy  {figures['proxy_ok']:.0f} requests ok, {figures['proxy_failed']:.0f} failed, "
        f"longest gap {figures['proxy_gap_ms']:.0f}ms (clients with a stale DNS answer)\n"
        "Next: edit policies/example.yaml for your gateways and run `failover plan --policy ...`.",
        highlight=False,
        soft_wrap=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
