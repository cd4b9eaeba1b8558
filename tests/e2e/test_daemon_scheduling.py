"""The daemon in-process: a hanging gateway delays nobody, a verdict reaches DNS at once,
and nothing is published while every region is still unknown or down."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path

from failover.adapters.zonefile import ZonefileAdapter
from failover.app import build_app
from failover.daemon import Daemon
from failover.localgw import LocalGateway
from failover.model import ProbeResult, Status, StreakKey
from failover.policy import parse_policy
from failover.probes import Probe
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
    thresholds = gc.get_threshold()
    zone = ZonefileAdapter(DOMAIN, tmp_path / "z.zone", "example.com.")
    daemon = Daemon(app, reconcile_interval=60)
    await daemon.start()
    try:
        await wait(lambda: zone.path.exists() and zone.read().addresses == ("127.0.0.41", "127.0.0.42"), 10)
        await wait(lambda: daemon.ready, 2)  # the evaluation that wrote the zone is counted when it returns
        assert gc.get_freeze_count() > 0  # every target probed once: the long-lived heap is frozen
        assert gc.get_threshold()[0] >= 10_000

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
    await wait(lambda: gc.get_freeze_count() == 0, 5)  # and thawed when the daemon stops
    assert gc.get_threshold() == thresholds


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


class _Stuck(Probe):
    """A probe that ignores its own timeout (a bug): the schedule must cut it off."""

    def __init__(self, inner: Probe) -> None:
        super().__init__(inner.target)
        self.label, self.interval, self.timeout = inner.label, inner.interval, inner.timeout

    async def run(self) -> ProbeResult:
        await asyncio.sleep(3600)
        raise AssertionError("never")


async def test_a_probe_past_its_deadline_counts_as_failed_and_stop_leaves_none_running(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="failover.daemon")
    port = free_port()
    gws = [LocalGateway(n, a, port) for n, a in (("e1", "127.0.0.41"), ("e2", "127.0.0.42"), ("w1", "127.0.0.43"))]
    for gw in gws:
        await gw.start()
    app = build_app(parse_policy(make_policy(tmp_path, port)))
    stuck = StreakKey(DOMAIN, "e2", f"http:{port}/")
    app.probes[stuck] = _Stuck(app.probes[stuck])
    daemon = Daemon(app, reconcile_interval=60)
    await daemon.start()
    try:
        # 150 ms timeout + 1 s: cancelled and recorded as a failure, then scheduled again
        await wait(lambda: "probe overran its timeout" in app.coordinator.streak(stuck).reason, 5)
        await wait(lambda: app.coordinator.streak(stuck).status is Status.DOWN, 10)
        assert app.coordinator.streak(StreakKey(DOMAIN, "e1", f"http:{port}/")).status is Status.UP
        schedule = daemon.probe_schedule
        assert schedule is not None and schedule.overruns >= 1
    finally:
        await daemon.stop()
        await app.aclose()
        for gw in gws:
            await gw.stop()
    await wait(lambda: schedule.in_flight == 0 and "probe schedule: {" in caplog.text, 5)
    runs = schedule.runs
    await asyncio.sleep(0.5)  # over two intervals: nothing is probed after stop()
    assert schedule.runs == runs
