"""The HAProxy follower against a real HAProxy (no daemon): spare slots for gateways HAProxy has
no server for (discovered replicas), address changes, fail static, a hand-made change put back,
and the errors an operator meets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.localgw import LocalGateway
from failover.model import DomainState, Status
from failover.policy import Policy
from failover.policy._load import parse_policy
from failover.proxy import haproxy as haproxy_module
from failover.proxy.haproxy import HaproxyFollower
from failover.proxy.haproxy_api import RuntimeApi, RuntimeApiError
from tests.support.haproxy import Haproxy, free_tcp_port, start_haproxy

DOMAIN = "api.example.com"
SLOTS = "    server-template slot 1-3 127.0.0.1:1 disabled"


def make_policy(haproxy: Haproxy, gateways: dict[str, dict[str, str]], **proxy: Any) -> Policy:
    return parse_policy({
        "service": "api",
        "observer": "east",
        "regions": [
            {"name": region, "gateways": [{"name": n, "address": a} for n, a in members.items()]}
            for region, members in gateways.items()
        ],
        "domains": [{"name": DOMAIN, "checks": [{"kind": "tcp", "port": 443}]}],
        "proxy": {"kind": "haproxy", "runtime_api": haproxy.runtime_api, "backend": haproxy.backend, **proxy},
    })  # fmt: skip


class Verdicts:
    def __init__(self, primary: str | None, secondary: str | None = None) -> None:
        self.state = DomainState(DOMAIN, primary=primary, secondary=secondary)
        self.statuses: dict[str, Status] = {}

    def decided(self, domain: str) -> DomainState | None:
        return self.state

    def of(self, domain: str) -> dict[str, Status]:
        return self.statuses


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Haproxy]:
    server = start_haproxy(tmp_path / "haproxy", {"e1": "127.0.0.11", "e2": "127.0.0.12"}, 8080, extra_servers=SLOTS)
    yield server
    server.stop()


async def states(haproxy: Haproxy) -> dict[str, tuple[str, str, str]]:
    servers = await asyncio.to_thread(haproxy.servers)
    return {
        name: (await asyncio.to_thread(haproxy.admin_state, name), row["srv_addr"], row["srv_port"])
        for name, row in servers.items()
    }


async def settled(follower: HaproxyFollower) -> None:
    follower()
    await asyncio.wait_for(follower.applied.wait(), 5)


async def test_gateways_without_a_server_take_spare_slots_and_follow_address_changes(haproxy: Haproxy) -> None:
    regions = {"east": {"e1": "127.0.0.11", "e2": "127.0.0.12"}, "west": {"w1": "127.0.0.21"}}
    verdicts = Verdicts("east", "west")
    follower = HaproxyFollower(
        make_policy(haproxy, regions).proxy,  # type: ignore[arg-type]
        make_policy(haproxy, regions),
        DOMAIN,
        verdicts.decided,
        verdicts.of,
    )
    await follower.start()
    try:
        assert await states(haproxy) == {
            "e1": ("ready", "127.0.0.11", "8080"),
            "e2": ("ready", "127.0.0.12", "8080"),
            "slot1": ("drain", "127.0.0.21", "1"),  # w1, standby; the port stays HAProxy's (no upstream_port)
            "slot2": ("maint", "127.0.0.1", "1"),
            "slot3": ("maint", "127.0.0.1", "1"),
        }
        # discovery: w1 moves, w2 appears; the policy is the source of the current gateways
        regions["west"] = {"w1": "127.0.0.31", "w2": "127.0.0.22"}
        follower.policy = make_policy(haproxy, regions)
        verdicts.state = DomainState(DOMAIN, primary="west", secondary="east")
        await settled(follower)
        assert await states(haproxy) == {
            "e1": ("drain", "127.0.0.11", "8080"),
            "e2": ("drain", "127.0.0.12", "8080"),
            "slot1": ("ready", "127.0.0.31", "1"),
            "slot2": ("ready", "127.0.0.22", "1"),
            "slot3": ("maint", "127.0.0.1", "1"),
        }
        # w1 leaves: its slot goes back to maintenance, w2 keeps its own
        del regions["west"]["w1"]
        follower.policy = make_policy(haproxy, regions)
        await settled(follower)
        got = await states(haproxy)
        assert got["slot1"][0] == "maint" and got["slot2"] == ("ready", "127.0.0.22", "1")
    finally:
        await follower.stop()


async def test_a_new_follower_finds_the_slot_at_its_gateways_address(haproxy: Haproxy) -> None:
    """A restarted daemon keeps the mapping: the slot already pointing at a gateway stays its slot."""
    await asyncio.to_thread(haproxy.command, f"set server {haproxy.backend}/slot3 addr 127.0.0.21 port 1")
    regions = {"east": {"e1": "127.0.0.11", "e2": "127.0.0.12"}, "west": {"w1": "127.0.0.21"}}
    verdicts = Verdicts("west", "east")
    policy = make_policy(haproxy, regions)
    follower = HaproxyFollower(policy.proxy, policy, DOMAIN, verdicts.decided, verdicts.of)  # type: ignore[arg-type]
    await follower.start()
    await follower.stop()
    got = await states(haproxy)
    assert got["slot3"] == ("ready", "127.0.0.21", "1")
    assert got["slot1"][0] == got["slot2"][0] == "maint"


async def test_down_gateways_go_to_maint_and_all_down_fails_static(haproxy: Haproxy) -> None:
    regions = {"east": {"e1": "127.0.0.11"}, "west": {"e2": "127.0.0.12"}}
    verdicts = Verdicts("east", "west")
    policy = make_policy(haproxy, regions, upstream_port=8443)
    follower = HaproxyFollower(policy.proxy, policy, DOMAIN, verdicts.decided, verdicts.of)  # type: ignore[arg-type]
    await follower.start()
    try:
        got = await states(haproxy)
        assert got["e1"] == ("ready", "127.0.0.11", "8443") and got["e2"] == ("drain", "127.0.0.12", "8443")
        verdicts.statuses["e1"] = Status.DOWN
        await settled(follower)
        got = await states(haproxy)
        assert got["e1"][0] == "maint" and got["e2"][0] == "ready"
        verdicts.statuses["e2"] = Status.DOWN  # nothing usable: keep the primary's servers ready
        await settled(follower)
        got = await states(haproxy)
        assert got["e1"][0] == "ready" and got["e2"][0] == "maint"
    finally:
        await follower.stop()


async def test_a_hand_made_change_and_a_lowered_weight_are_put_back(
    haproxy: Haproxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(haproxy_module, "RESYNC_INTERVAL", 0.1)
    regions = {"east": {"e1": "127.0.0.11", "e2": "127.0.0.12"}}
    verdicts = Verdicts("east")
    policy = make_policy(haproxy, regions)
    follower = HaproxyFollower(policy.proxy, policy, DOMAIN, verdicts.decided, verdicts.of)  # type: ignore[arg-type]
    await follower.start()
    try:
        await asyncio.to_thread(haproxy.command, f"set server {haproxy.backend}/e1 state maint")
        await asyncio.to_thread(haproxy.command, f"set server {haproxy.backend}/e2 weight 0")
        async with asyncio.timeout(5):
            while True:
                servers = await asyncio.to_thread(haproxy.servers)
                if haproxy.admin_state("e1") == "ready" and servers["e2"]["srv_uweight"] == "1":
                    break
                await asyncio.sleep(0.05)
    finally:
        await follower.stop()


async def test_the_errors_name_what_is_missing(haproxy: Haproxy, tmp_path: Path) -> None:
    verdicts = Verdicts("east")
    # the backend is the follower's: e2 (no gateway of that name) and the 3 slots are spare; x4 finds none
    regions = {"east": {"e1": "127.0.0.11", **{f"x{i}": f"127.0.0.{40 + i}" for i in range(5)}}}
    policy = make_policy(haproxy, regions)
    follower = HaproxyFollower(policy.proxy, policy, DOMAIN, verdicts.decided, verdicts.of)  # type: ignore[arg-type]
    with pytest.raises(RuntimeApiError, match="backend 'gateways' has no server named 'x4' and no spare server"):
        await follower.start()
    assert {state for state, _, _ in (await states(haproxy)).values()} == {"ready", "maint"}  # untouched
    unreachable = RuntimeApi(f"unix:{tmp_path / 'nobody.sock'}")
    with pytest.raises(RuntimeApiError, match=r"nobody\.sock: cannot reach it"):
        await unreachable.servers("gateways")
    api = RuntimeApi(haproxy.runtime_api)
    with pytest.raises(RuntimeApiError, match="backend 'gateways' has no server 'ghost'"):
        await api.set_state("gateways", "ghost", "ready")
    with pytest.raises(RuntimeApiError, match="HAProxy refused 'set server gateways/e1 weight lots'"):
        await api.set_weight("gateways", "e1", "lots")


async def test_failed_connects_through_haproxy_are_reported_by_gateway_address(haproxy: Haproxy) -> None:
    """Nothing listens behind the servers (port 8080 on 127.0.0.11/12): HAProxy's connect errors
    reach the listener as the gateway's address, the data path's early signal of a dead gateway."""
    regions = {"east": {"e1": "127.0.0.11", "e2": "127.0.0.12"}}
    verdicts = Verdicts("east")
    policy = make_policy(haproxy, regions)
    follower = HaproxyFollower(policy.proxy, policy, DOMAIN, verdicts.decided, verdicts.of)  # type: ignore[arg-type]
    suspects: list[str] = []
    assert follower.on_connect_failure(suspects.append)
    await follower.start()
    try:
        # the first read only sets the baseline: keep connecting until both are reported
        async def client() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", haproxy.port)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await reader.read()  # HAProxy closes once every server refused
            writer.close()

        async with asyncio.timeout(5):
            while set(suspects) != {"127.0.0.11", "127.0.0.12"}:
                await client()
                await asyncio.sleep(0.05)
    finally:
        await follower.stop()


async def test_when_every_active_server_refuses_the_standby_ones_take_connections_before_a_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(haproxy_module, "SPILL_TIME", 0.5)
    port = free_tcp_port()
    standby = LocalGateway("w1", "127.0.0.21", port)  # nothing listens for e1 (127.0.0.11)
    await standby.start()
    regions = {"east": {"e1": "127.0.0.11"}, "west": {"w1": "127.0.0.21"}}
    haproxy = await asyncio.to_thread(start_haproxy, tmp_path / "haproxy", {**regions["east"], **regions["west"]}, port)
    verdicts = Verdicts("east", "west")  # and no verdict at all: the probes have not seen e1 die
    policy = make_policy(haproxy, regions)
    follower = HaproxyFollower(policy.proxy, policy, DOMAIN, verdicts.decided, verdicts.of)  # type: ignore[arg-type]
    suspects: list[str] = []
    follower.on_connect_failure(suspects.append)
    await follower.start()

    async def request() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", haproxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    try:
        assert (await states(haproxy))["w1"][0] == "drain"
        async with asyncio.timeout(5):
            while not (await request()).endswith(b"ok w1\n"):  # refused by e1 until w1 is made ready
                await asyncio.sleep(0.02)
        assert "127.0.0.11" in suspects
        assert (await states(haproxy))["e1"][0] == "ready"  # the verdict, not the data path, takes e1 out
        async with asyncio.timeout(5):  # no more failed connects: back to the plan, w1 standing by
            while (await states(haproxy))["w1"][0] != "drain":
                await asyncio.sleep(0.05)
    finally:
        await follower.stop()
        await asyncio.to_thread(haproxy.stop)
        await standby.stop()
