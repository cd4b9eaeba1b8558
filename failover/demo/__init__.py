"""``failover demo``: the whole system on this machine, with nothing to set up.

Two regions of real HTTP gateways on loopback (east: 127.0.0.11-12, west: 127.0.0.21-22),
a sqlite store and a zone file in a temporary folder, the real daemon, and the embedded
proxy with a client sending requests through it the whole time. It waits for the
first election, kills east's gateways, measures how long detection and the DNS shift take,
brings east back, watches the automatic failback, and prints a summary. Runs unattended
(no TTY, ``CI=true``) with plain lines instead of the live view.

It never hangs: every wait and every start-up step has a deadline and a miss exits 1 naming
what it waited for; every shutdown step has one and an overrun is reported and skipped; a
watchdog thread ends the process when the whole budget is gone (``failover/demo/_guard.py``).
"""

from __future__ import annotations

import asyncio
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

from failover import events as ev
from failover.adapters.zonefile import ZonefileAdapter
from failover.app import build_app
from failover.daemon import Daemon
from failover.demo._guard import (
    DemoTimeout,
    Progress,
    ShutdownSteps,
    Watchdog,
    exit_past_stuck_threads,
    run_loop,
    wait_until,
    warn,
    within,
)
from failover.demo._view import DOMAIN, Client, View, tick
from failover.localgw import LocalGateway
from failover.model import Status
from failover.policy import load_policy
from failover.proxy import Proxy
from failover.proxy.follow import RouteFollower

EAST = {"east-a": "127.0.0.11", "east-b": "127.0.0.12"}
WEST = {"west-a": "127.0.0.21", "west-b": "127.0.0.22"}
REGION_OF = {address: "east" for address in EAST.values()} | {address: "west" for address in WEST.values()}

# Deadlines in seconds. A run on an idle machine takes: first election 0.6, detection 1.2,
# DNS shift 1.2, failback 3.7 (3s healthy), shutdown 1; the waits allow ten times that or more.
BUDGET = 85.0  # the whole run, plus its pauses; `tests/e2e/test_demo.py` allows 120
SHUTDOWN_RESERVE = 26.0  # kept out of the waits: the shutdown steps (19), the loop's teardown (5), thread joins (2)
STEP = 5.0  # starting or stopping one gateway, the proxy, the daemon
FIRST_ELECTION = 20.0
DETECTION = 15.0
DNS_SHIFT = 15.0
FAILBACK = 25.0
PAUSES = 3.5  # seconds of pauses at speed 1, so the viewer can follow


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


def _published(records: tuple[str, ...]) -> str:
    """What the zone file serves, for a timeout's message: "still east in the zone file (...)"."""
    if not records:
        return "no address in the zone file yet"
    regions = sorted({REGION_OF.get(address, "unknown") for address in records})
    return f"still {' and '.join(regions)} in the zone file ({', '.join(records)})"


async def _demo(console: Console, live: bool, speed: float, progress: Progress) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="failover-demo-"))
    port = _free_port(list(EAST.values()) + list(WEST.values()))
    policy_file = folder / "policy.yaml"
    proxy_port = _free_port(["127.0.0.1"])
    policy_file.write_text(yaml.safe_dump(demo_policy(folder, port, proxy_port), sort_keys=False))
    policy = load_policy(policy_file)
    view = View(console, live)
    shutdown = ShutdownSteps(progress)

    def enter(phase: str) -> None:
        view.phase = phase
        progress.enter(phase)

    gateways = {name: LocalGateway(name, addr, port) for name, addr in {**EAST, **WEST}.items()}
    shutdown.push("stopping the gateways", lambda: asyncio.gather(*(g.stop() for g in gateways.values())), 2.0)
    try:
        for name, gateway in gateways.items():
            await within(progress, f"starting gateway {name}", gateway.start(), STEP)
        app = build_app(policy)
        daemon = Daemon(app, reconcile_interval=2.0)

        async def close_app() -> None:
            if "stopping the daemon" in shutdown.unfinished:  # its evaluation may still be using the store
                warn("shutdown: left the probes and the store open: the daemon did not stop")
                return
            await app.aclose()

        shutdown.push("closing the probes and the store", close_app, 3.0)
        zone = ZonefileAdapter(DOMAIN, folder / "demo.test.zone", "demo.test.")
        view.say(f"policy, sqlite store and zone file in {folder}")
        view.say(f"gateways: east {', '.join(EAST.values())}; west {', '.join(WEST.values())} (port {port})")

        def on_event(event: ev.Event) -> None:  # the decisions and changes, as they happen
            if isinstance(event, ev.PrimaryChanged):
                view.say(f"{event.kind}: {ev.describe(event)}")
            elif isinstance(event, ev.AdapterApplied):
                view.say(f"applied: {ev.describe(event)}")
            elif isinstance(event, ev.AdapterFailed | ev.RaceLost):
                view.say(f"{'error' if isinstance(event, ev.AdapterFailed) else 'lost_race'}: {ev.describe(event)}")

        app.coordinator.events.subscribe(on_event)

        def refresh(_: object = None) -> None:
            snap = app.coordinator.snapshot()
            view.health = {f"{r} ({DOMAIN})": str(v.status) for r, v in snap.health[DOMAIN].items()}
            state = app.store.get_state(DOMAIN)
            view.primary = state.primary if state and state.primary else "-"
            view.records = zone.read().addresses if zone.path.exists() else ()

        daemon.after_evaluation.append(refresh)
        east = tuple(sorted(EAST.values()))
        west = tuple(sorted(WEST.values()))

        def records() -> tuple[str, ...]:
            return zone.read().addresses if zone.path.exists() else ()

        def serving(addresses: tuple[str, ...]) -> Callable[[], bool]:
            return lambda: records() == addresses

        def east_statuses() -> str:
            statuses = app.coordinator.gateway_statuses(DOMAIN)
            return ", ".join(f"{g} {statuses.get(g, Status.UNKNOWN)}" for g in EAST)

        def waiting(wanted: float) -> float:  # a short budget (the tests') keeps a third for the shutdown
            return progress.deadline(wanted, min(SHUTDOWN_RESERVE, progress.budget / 3))

        assert policy.proxy is not None
        proxy = Proxy(policy.proxy, registry=None)
        follow = RouteFollower(proxy, policy, DOMAIN, app.coordinator.decided_state, app.coordinator.gateway_statuses)
        daemon.after_verdict.append(follow)
        daemon.after_evaluation.append(follow)
        shutdown.push("stopping the proxy", lambda: proxy.stop(timeout=2.0), 4.0)
        await within(progress, "starting the proxy", proxy.start(), STEP)
        view.say(f"proxy on 127.0.0.1:{proxy_port}: a client sends a request every 20ms through it")
        client = Client(proxy_port)
        view.client = client

        figures: dict[str, float] = {}
        shutdown.push("stopping the daemon", daemon.stop, 5.0)
        await within(progress, "starting the daemon", daemon.start(), STEP)
        traffic = asyncio.create_task(client.run(progress.left()), name="demo client")

        async def stop_client() -> None:
            client.stop()  # ends its loop even if the cancel below is lost (see Client)
            traffic.cancel()
            await asyncio.wait({traffic})

        shutdown.push("stopping the client", stop_client, 3.0)
        if live:
            live_view = Live(view.render(), console=console, refresh_per_second=8, transient=False)
            live_view.start()
            ticker = asyncio.create_task(tick(live_view, view), name="demo view")

            async def stop_view() -> None:
                ticker.cancel()
                live_view.update(view.render())
                live_view.stop()

            shutdown.push("stopping the live view", stop_view, 2.0)

        enter("electing")
        t0 = time.monotonic()
        await wait_until(
            progress, "the first election", serving(east), lambda: _published(records()), waiting(FIRST_ELECTION)
        )
        figures["first_publish_s"] = time.monotonic() - t0
        view.say(f"east elected and published in {figures['first_publish_s']:.2f}s")
        await asyncio.sleep(1.5 * speed)

        enter("east fails")
        view.say("killing east's gateways (connections now refused)")
        killed = time.monotonic()
        for name in EAST:
            await within(progress, f"stopping gateway {name}", gateways[name].stop(), STEP)
        detected = await wait_until(
            progress,
            "detection of east down",
            lambda: all(app.coordinator.gateway_statuses(DOMAIN).get(g) is Status.DOWN for g in EAST),
            east_statuses,
            waiting(DETECTION),
        )
        shifted = await wait_until(
            progress, "the DNS shift to west", serving(west), lambda: _published(records()), waiting(DNS_SHIFT)
        )
        figures["detection_s"] = detected - killed
        figures["failover_s"] = shifted - killed
        view.say(
            f"east detected down after {figures['detection_s']:.2f}s; DNS on west after "
            f"{figures['failover_s']:.2f}s (interval 0.5s, fall 3)"
        )
        await asyncio.sleep(1.5 * speed)

        enter("east recovers")
        view.say("bringing east back (failback: auto after 3s healthy, hold-down 2s)")
        back = time.monotonic()
        for name in EAST:
            await within(progress, f"restarting gateway {name}", gateways[name].start(), STEP)
        returned = await wait_until(
            progress, "the failback to east", serving(east), lambda: _published(records()), waiting(FAILBACK)
        )
        figures["failback_s"] = returned - back
        view.say(f"failed back to east {figures['failback_s']:.2f}s after it came back")
        enter("done")
        await asyncio.sleep(0.5 * speed)
        view.say(f"through the proxy: {client.summary()}")
        figures["proxy_failed"] = client.failed
        figures["proxy_ok"] = sum(client.ok.values())
        figures["proxy_gap_ms"] = client.longest_gap * 1000
    finally:
        await shutdown.run()
    return figures


def run_demo(speed: float = 1.0, budget: float | None = None) -> int:
    """Run the demo; 0 with a summary, 1 when a phase missed its deadline (the message says
    which). ``budget``: seconds for the whole run (default ``BUDGET`` plus the pauses), enforced
    up to the process's exit by a watchdog: call this last, as ``failover demo`` does."""
    console = Console()
    live = console.is_terminal and not os.environ.get("CI")
    progress = Progress(budget if budget is not None else BUDGET + PAUSES * speed)
    Watchdog(progress).start()
    code = 1
    try:
        try:
            figures = run_loop(_demo(console, live, speed, progress))
        except DemoTimeout as exc:
            console.print(f"[red]demo: {exc}[/red]", highlight=False, soft_wrap=True)
            return code
        code = 0
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
        return code
    finally:
        progress.enter("exiting")
        exit_past_stuck_threads(code)


if __name__ == "__main__":
    sys.exit(run_demo())
