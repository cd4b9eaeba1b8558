"""`failover run` with a region whose gateways come from DNS (SRV), as a real subprocess: one
real BIND serves the SRV/A records the daemon discovers (changed with TSIG-signed updates while
it runs), another is where it publishes, and real loopback gateways answer the probes.

* the first answer's replicas are probed and published;
* a replica added in DNS is probed and published;
* one removed from DNS while healthy leaves after the grace time, not before;
* one removed from DNS that also dies leaves as soon as its probes fail (well inside the grace);
* the discovery server stopped: the last set is kept (published, still probed), a
  ``discovery_failed`` alert and audit entry; started again: ``discovery_recovered``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.update
import pytest

from failover.adapters.rfc2136 import Rfc2136Adapter
from failover.localgw import LocalGateway, ThreadedGateways
from tests.conftest import WEST, failover_cmd, policy_dict, wait_for
from tests.support.bind import Bind, free_port, start_bind
from tests.support.receiver import Receiver

DOMAIN = "api.example.com"
SRV = "_gw._tcp.east.disc.test"
REPLICAS = {"web-0": "127.0.0.31", "web-1": "127.0.0.32", "web-2": "127.0.0.33"}
GRACE = 10.0


@pytest.fixture
def discovery_dns(tmp_path: Path) -> Iterator[Bind]:
    """The discovery server: a zone of its own, so that stopping it leaves publishing alone."""
    records = "\n".join(
        [f"{name}.east IN A {address}" for name, address in list(REPLICAS.items())[:2]]
        + [f"_gw._tcp.east IN SRV 0 10 8080 {name}.east" for name in list(REPLICAS)[:2]]
    )
    server = start_bind(tmp_path / "discovery-dns", zone="disc.test.", extra_records=records)
    yield server
    server.stop()


@pytest.fixture
def replicas() -> Iterator[tuple[ThreadedGateways, int]]:
    port = free_port()
    pool = ThreadedGateways([LocalGateway(n, a, port) for n, a in {**REPLICAS, **WEST}.items()])
    pool.start()
    yield pool, port
    pool.close()


def update(server: Bind, build: Any) -> None:
    key = (server.key_name, server.algorithm, server.key_secret)
    Rfc2136Adapter("east.disc.test", server.host, server.port, server.zone, 30, key).raw_update(build)


def add_replica(server: Bind, name: str) -> None:
    def build(u: dns.update.UpdateMessage) -> None:
        u.add(f"{name}.east.disc.test.", 30, "A", REPLICAS[name])
        u.add(SRV + ".", 30, "SRV", f"0 10 8080 {name}.east.disc.test.")

    update(server, build)


def remove_replica(server: Bind, name: str) -> None:
    update(server, lambda u: u.delete(SRV + ".", "SRV", f"0 10 8080 {name}.east.disc.test."))


def restart(server: Bind, args: list[str]) -> None:
    log = (server.workdir / "named.log").open("ab")
    server.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=server.workdir)
    wait_for(server.soa_ok, 20, "the discovery server answers again")


def published(bind: Bind) -> list[str]:
    return bind.query(DOMAIN)


def addresses(*names: str) -> list[str]:
    return sorted(REPLICAS[n] for n in names)


def kinds(receiver: Receiver) -> list[str]:
    return [body["event"] for body in receiver.bodies()]


def history(policy: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    out = subprocess.run(
        [*failover_cmd(), "history", "--policy", str(policy), "--json"], env=env, capture_output=True, check=True
    )
    data = json.loads(out.stdout)
    return data if isinstance(data, list) else list(data.get("entries", []))


def test_daemon_follows_the_gateways_dns_names(bind, discovery_dns, replicas, write_policy, cli_env, tmp_path):
    pool, port = replicas
    Rfc2136Adapter(
        DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, bind.algorithm, bind.key_secret)
    ).raw_update(lambda u: (u.delete(DOMAIN + ".", "A"), u.delete("_failover." + DOMAIN + ".", "TXT")))
    hook = Receiver().start()
    data = policy_dict(
        bind, port, alerts=[{"kind": "webhook", "url_env": "DISCOVERY_HOOK_URL", "dedupe_window": "0s"}]
    )
    data["regions"][0] = {
        "name": "east",
        "priority": 10,
        "gateways_from": {
            "dns": SRV,
            "type": "SRV",
            "refresh": "500ms",
            "grace": f"{GRACE:g}s",
            "server": discovery_dns.server,
        },
    }
    policy = write_policy(data)
    env = {**cli_env, "DISCOVERY_HOOK_URL": hook.url}
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [*failover_cmd(), "-v", "run", "--policy", str(policy)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    named_args = list(discovery_dns.process.args) if discovery_dns.process is not None else []
    try:
        # the first answer's replicas are probed, east is elected and they are published
        wait_for(lambda: published(bind) == addresses("web-0", "web-1"), 30, "first publish of the SRV set")

        # a replica added in DNS is probed and joins the published answer
        add_replica(discovery_dns, "web-2")
        wait_for(lambda: published(bind) == addresses("web-0", "web-1", "web-2"), 15, "web-2 published")

        # healthy but gone from DNS: it stays for the grace time, then leaves
        removed = time.monotonic()
        remove_replica(discovery_dns, "web-1")
        wait_for(lambda: published(bind) == addresses("web-0", "web-2"), GRACE + 10, "web-1 retired")
        assert time.monotonic() - removed >= GRACE - 1.0, "left before its grace time"

        # gone from DNS and dead: its failed probes take it out well inside the grace time
        removed = time.monotonic()
        remove_replica(discovery_dns, "web-2")
        pool.stop("web-2")
        wait_for(lambda: published(bind) == addresses("web-0"), GRACE, "web-2 out on its probes")
        assert time.monotonic() - removed < GRACE - 1.0

        # the discovery server stops: the last set stays, and people are told
        discovery_dns.stop()
        wait_for(lambda: "discovery_failed" in kinds(hook), 15, "discovery_failed alert")
        assert published(bind) == addresses("web-0"), "the kept set must not empty the region"
        # the kept gateway is still probed: when it dies, east is down and west takes over
        pool.stop("web-0")
        wait_for(lambda: published(bind) == sorted(WEST.values()), 15, "failover on the kept gateway's probes")

        restart(discovery_dns, named_args)
        wait_for(lambda: "discovery_recovered" in kinds(hook), 15, "discovery_recovered alert")

        audit = [entry["kind"] for entry in history(policy, env)]
        assert {"discovered", "discovery_failed", "discovery_recovered"} <= set(audit), audit

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        log.close()
        hook.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "cannot resolve " + SRV in text


async def test_resolution_against_a_real_server(tmp_path: Path) -> None:
    """A/AAAA/SRV answers become named gateways; NXDOMAIN, no data and a dead server are failures."""
    from failover.discovery import DiscoveryError, resolve
    from failover.policy._discovery import GatewaysFrom

    records = """
a.pool IN A 10.0.0.1
a.pool IN A 10.0.0.2
v6.pool IN AAAA fd00::1
two.pool IN A 10.0.1.1
two.pool IN A 10.0.1.2
_gw._tcp.pool IN SRV 0 10 443 one.pool
_gw._tcp.pool IN SRV 0 10 443 two.pool
one.pool IN A 10.0.2.1
"""
    server = start_bind(tmp_path / "dns", zone="disc.test.", extra_records=records)

    async def names(name: str, rdtype: str) -> list[tuple[str, str]]:
        source = GatewaysFrom(dns=name, type=rdtype, server=server.server, timeout="1s")
        return sorted((g.name, g.address) for g in await resolve(source, "east"))  # BIND rotates rrsets

    try:
        assert await names("a.pool.disc.test", "A") == [("east-10.0.0.1", "10.0.0.1"), ("east-10.0.0.2", "10.0.0.2")]
        assert await names("v6.pool.disc.test", "AAAA") == [("east-fd00--1", "fd00::1")]
        assert await names("_gw._tcp.pool.disc.test", "SRV") == [
            ("one.pool.disc.test", "10.0.2.1"),
            ("two.pool.disc.test-10.0.1.1", "10.0.1.1"),
            ("two.pool.disc.test-10.0.1.2", "10.0.1.2"),
        ]
        with pytest.raises(DiscoveryError, match="NXDOMAIN"):
            await names("missing.disc.test", "A")
        with pytest.raises(DiscoveryError, match="no AAAA records"):
            await names("a.pool.disc.test", "AAAA")
        server.stop()
        with pytest.raises(DiscoveryError, match=r"no answer within 1s|refused|failed"):
            await names("a.pool.disc.test", "A")
    finally:
        server.stop()


def test_no_first_answer_starts_the_region_unknown_and_says_so(
    bind, discovery_dns, replicas, write_policy, cli_env, tmp_path
):
    """The name has no records yet at start: the daemon starts after startup_wait with east
    UNKNOWN (never "0/0 down") and a critical alert; once the records exist, east's replicas are
    probed and reported, and people are told it recovered."""
    import httpx

    _pool, port = replicas
    remove_replica(discovery_dns, "web-0")
    remove_replica(discovery_dns, "web-1")  # the SRV name is gone: NXDOMAIN
    hook = Receiver().start()
    listen = f"127.0.0.1:{free_port()}"
    data = policy_dict(
        bind,
        port,
        alerts=[{"kind": "webhook", "url_env": "DISCOVERY_HOOK_URL", "dedupe_window": "0s"}],
        api={"listen": listen},
    )
    data["regions"][0] = {
        "name": "east",
        "priority": 10,
        "gateways_from": {
            "dns": SRV,
            "type": "SRV",
            "refresh": "500ms",
            "startup_wait": "1s",
            "server": discovery_dns.server,
        },
    }
    policy = write_policy(data)
    env = {**cli_env, "DISCOVERY_HOOK_URL": hook.url, "FAILOVER_API_TOKEN": "unused-here"}
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [*failover_cmd(), "-v", "run", "--policy", str(policy)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    http = httpx.Client(base_url=f"http://{listen}", timeout=5)

    def east() -> dict[str, Any]:
        try:
            response = http.get("/v1/status")
        except httpx.HTTPError:
            return {}
        return dict(response.json()["domains"][DOMAIN]["regions"]["east"]) if response.status_code == 200 else {}

    try:
        wait_for(lambda: "discovery_failed" in kinds(hook), 20, "discovery_failed alert at start")
        failed = next(b for b in hook.bodies() if b["event"] == "discovery_failed")
        assert failed["severity"] == "critical" and "no gateway known yet" in failed["reason"]
        wait_for(lambda: bool(east()), 20, "the API answers")
        assert east()["status"] == "unknown" and east()["gateways"] == {}

        add_replica(discovery_dns, "web-0")
        wait_for(lambda: east().get("gateways") == {"web-0.east.disc.test": "up"}, 15, "web-0 discovered and up")
        wait_for(lambda: "discovery_recovered" in kinds(hook), 10, "discovery_recovered alert")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        log.close()
        hook.close()
        http.close()
