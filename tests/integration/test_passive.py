"""Detection from the data path (failover/passive.py) against real gateways on loopback: a
failed connect starts confirmation probes at once; a dead gateway is down after ``fall`` of
them, a live one is not marked down by one client's bad luck."""

from __future__ import annotations

import asyncio

from failover.localgw import LocalGateway
from failover.model import ProbeResult, StreakKey
from failover.passive import COOLDOWN, DataPathWatch
from failover.policy import parse_policy
from failover.probes import build_probes
from tests.support.bind import free_port

DOMAIN = "api.example.com"


def watch_for(port: int, recorded: list[tuple[StreakKey, ProbeResult]]) -> DataPathWatch:
    policy = parse_policy(
        {
            "service": "s",
            "observer": "east",
            "regions": [
                {"name": "east", "gateways": [{"name": "e1", "address": "127.0.0.11"}]},
                {"name": "west", "gateways": [{"name": "w1", "address": "127.0.0.21"}]},
            ],
            "domains": [{"name": DOMAIN, "checks": [{"kind": "http", "port": port, "path": "/ready"}]}],
            "health": {"rise": 2, "fall": 3},
        }
    )
    probes = build_probes(policy)
    return DataPathWatch(lambda: probes, lambda k, r: recorded.append((k, r)), DOMAIN, fall=3)


async def settle(watch: DataPathWatch) -> None:
    for _ in range(200):  # bounded: a burst is three probes 100 ms apart
        if not watch._busy:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the confirmation burst did not end within 4 s")


async def test_a_dead_gateway_fails_fall_confirmations_at_once() -> None:
    recorded: list[tuple[StreakKey, ProbeResult]] = []
    watch = watch_for(free_port(), recorded)  # nothing listens: connects are refused
    started = asyncio.get_running_loop().time()
    watch.suspect("127.0.0.11")
    await settle(watch)
    assert [(k.gateway, r.ok) for k, r in recorded] == [("e1", False)] * 3
    assert asyncio.get_running_loop().time() - started < 1.0  # not an interval per probe
    await watch.aclose()


async def test_one_failed_connect_to_a_live_gateway_marks_nothing_down() -> None:
    port = free_port()
    gateway = LocalGateway("e1", "127.0.0.11", port)
    await gateway.start()
    try:
        recorded: list[tuple[StreakKey, ProbeResult]] = []
        watch = watch_for(port, recorded)
        watch.suspect("127.0.0.11")  # a client's reset, say
        await settle(watch)
        assert [(k.gateway, r.ok) for k, r in recorded] == [("e1", True)]  # one good probe ends it
        watch.suspect("127.0.0.11")  # within the cooldown: no new burst
        watch.suspect("127.0.0.99")  # not a gateway of this policy: nothing to confirm
        await settle(watch)
        assert len(recorded) == 1 and watch.bursts == 1
        await asyncio.sleep(COOLDOWN + 0.05)
        watch.suspect("127.0.0.11")
        await settle(watch)
        assert len(recorded) == 2 and watch.bursts == 2
        await watch.aclose()
    finally:
        await gateway.stop()
