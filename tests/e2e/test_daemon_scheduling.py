"""The daemon in-process: a hanging gateway delays nobody, a verdict reaches DNS at once,
and nothing is published while every region is still unknown or down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from failover.adapters.zonefile import ZonefileAdapter
from failover.app import build_app
from failover.daemon import Daemon
from failover.localgw import LocalGateway
from failover.model import Status, StreakKey
from failover.policy import parse_policy
from tests.support.bind import free_port

DOMAIN = "api.example.com"


def make_policy(tmp_path: Path, port: int) -> dict:
    return {
        "service": "s",
        "observer": "east",
        "regions": [
            {
                "name": "east",
                "priority": 1,
                "gateways": [{"name": "e1", "address": "127.0.0.41"}, {"name": "e2", "address": "127.0.0.42"}],
            },
            {"name": "west", "priority": 2, "gateways": [{"name": "w1", "address": "127.0.0.43"}]},
        ],
        "domains": [
            {
                "name": DOMAIN,
                "checks": [{"kind": "http", "port": port, "interval": "200ms", "timeout": "150ms"}],
                "traffic": [{"kind": "zonefile", "path": str(tmp_path / "z.zone"), "zone": "example.com."}],
            }
        ],
        "health": {"rise": 1, "fall": 2},
        "election": {"hold_down": "0s"},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
    }


async def wait(condition, deadline: float) -> float:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_hanging_gateway_delays_nobody_and_verdicts_reach_dns_fast(tmp_path):
    port = free_port()
    gws = {n: LocalGateway(n, a, port) for n, a in (("e1", "127.0.0.41"), ("e2", "127.0.0.42"), ("w1", "127.0.0.43"))}
    for gw in gws.values():
        await gw.start()
    app = build_app(parse_policy(make_policy(tmp_path, port)))
    zone = ZonefileAdapter(DOMAIN, tmp_path / "z.zone", "example.com.")
    daemon = Daemon(app, reconcile_interval=60)
    await daemon.start()
    try:
        await wait(lambda: zone.path.exists() and zone.read().addresses == ("127.0.0.41", "127.0.0.42"), 10)
        assert daemon.ready

        gws["e2"].mode = "hang"  # accepts, never answers
        before = gws["w1"].requests
        await wait(lambda: app.coordinator.streak(StreakKey(DOMAIN, "e2", f"http:{port}/")).status is Status.DOWN, 5)
        # w1 keeps its 200 ms schedule while e2 hangs (about 5 probes a second, not 1 per hang)
        await wait(lambda: gws["w1"].requests - before >= 8, 4)
        await wait(lambda: zone.read().addresses == ("127.0.0.41",), 2)

        await gws["e1"].stop()
        down = await wait(
            lambda: app.coordinator.streak(StreakKey(DOMAIN, "e1", f"http:{port}/")).status is Status.DOWN, 5
        )
        flipped = await wait(lambda: zone.read().addresses == ("127.0.0.43",), 5)
        assert flipped - down < 1.0  # evaluation on the verdict, not on a slow timer
    finally:
        await daemon.stop()
        await app.aclose()
        for gw in gws.values():
            await gw.stop()


async def test_nothing_is_published_while_every_region_is_down_at_start(tmp_path):
    port = free_port()  # no gateway listens: everything is refused
    app = build_app(parse_policy(make_policy(tmp_path, port)))
    daemon = Daemon(app, reconcile_interval=60)
    await daemon.start()
    try:
        await wait(lambda: all(app.coordinator.streak(k).status is Status.DOWN for k in app.probes), 5)
        await wait(lambda: daemon.evaluations > 0, 5)
        outcome = app.coordinator.evaluate()[0]
        assert outcome.decision.state.primary is None and outcome.decision.kind == "waiting"
        assert not (tmp_path / "z.zone").exists()
    finally:
        await daemon.stop()
        await app.aclose()
