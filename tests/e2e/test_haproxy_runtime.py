"""`failover run` with `proxy: {kind: haproxy}` drives a real HAProxy through its Runtime API,
with real loopback gateways behind it and traffic through it: a killed gateway, the region
failover (traffic moves before DNS), a drain, and misconfigurations named in the error."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from failover.localgw import ThreadedGateways
from tests.conftest import EAST, WEST, failover_cmd, policy_dict, wait_for
from tests.support.haproxy import Haproxy, start_haproxy

DOMAIN = "api.example.com"


@pytest.fixture
def haproxy(gateways: tuple[ThreadedGateways, int], tmp_path: Path) -> Iterator[Haproxy]:
    _, port = gateways
    server = start_haproxy(tmp_path / "haproxy", {**EAST, **WEST}, port)
    yield server
    server.stop()


def get(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"}, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


def states(haproxy: Haproxy) -> dict[str, str]:
    return {name: haproxy.admin_state(name) for name in haproxy.servers()}


def haproxy_policy(bind, port: int, haproxy: Haproxy) -> dict[str, object]:  # type: ignore[no-untyped-def]
    data = policy_dict(bind, port)
    data["proxy"] = {"kind": "haproxy", "runtime_api": haproxy.runtime_api, "backend": haproxy.backend}
    return data


def test_haproxy_follows_a_dead_gateway_the_failover_and_a_drain(
    bind, gateways, haproxy, write_policy, cli_env, tmp_path
):
    pool, port = gateways
    policy = write_policy(haproxy_policy(bind, port, haproxy))
    log_path = tmp_path / "daemon.log"
    log = log_path.open("w")
    daemon = subprocess.Popen(
        [*failover_cmd(), "run", "--policy", str(policy)], env=cli_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # elected east: its servers ready, west's drained (standby), traffic to east only
        home = {"east-a": "ready", "east-b": "ready", "west-a": "drain", "west-b": "drain"}
        wait_for(lambda: states(haproxy) == home, 20, "east ready, west drained")
        assert {get(haproxy.port) for _ in range(10)} == {"ok east-a", "ok east-b"}

        # one primary gateway dies: its server goes to maint, the other takes everything
        pool.stop("east-a")
        wait_for(lambda: haproxy.admin_state("east-a") == "maint", 10, "east-a in maint")
        assert {get(haproxy.port) for _ in range(10)} == {"ok east-b"}
        wait_for(lambda: bind.query(DOMAIN) == [EAST["east-b"]], 10, "DNS without east-a")

        # the whole primary region dies: west's servers become ready at the verdict, before DNS
        pool.stop("east-b")
        wait_for(lambda: (get(haproxy.port) or "").startswith("ok west"), 10, "traffic through HAProxy to west")
        wait_for(lambda: bind.query(DOMAIN) == sorted(WEST.values()), 10, "DNS moved to west")
        assert states(haproxy) == {"east-a": "maint", "east-b": "maint", "west-a": "ready", "west-b": "ready"}
        lines = log_path.read_text().splitlines()
        moved = next(i for i, line in enumerate(lines) if "gateways/west-a drain -> ready" in line)
        decided = next(i for i, line in enumerate(lines) if "west elected" in line)  # then DNS is changed
        assert moved < decided, "\n".join(lines)
        assert {get(haproxy.port) for _ in range(10)} == {"ok west-a", "ok west-b"}

        # east comes back (failback is manual): its servers wait drained, as standby
        pool.start("east-a", "east-b")
        back = {"east-a": "drain", "east-b": "drain", "west-a": "ready", "west-b": "ready"}
        wait_for(lambda: states(haproxy) == back, 15, "east back as standby")

        # draining west (maintenance) moves traffic home and drains west's servers
        drained = subprocess.run(
            [*failover_cmd(), "drain", "west", "--policy", str(policy)], env=cli_env, capture_output=True, text=True
        )
        assert drained.returncode == 0, drained.stdout + drained.stderr
        wait_for(lambda: states(haproxy) == home, 15, "west drained, east ready")
        assert {get(haproxy.port) for _ in range(10)} == {"ok east-a", "ok east-b"}
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
        log.close()
    assert "proxy: HAProxy backend gateways through unix:" in log_path.read_text()


@pytest.mark.parametrize(
    ("servers", "backend", "message"),
    [
        ({**EAST, "west-a": WEST["west-a"]}, "gateways", "has no server named 'west-b'"),
        ({**EAST, **WEST}, "elsewhere", "HAProxy has no backend 'elsewhere'"),
    ],
)
def test_a_missing_server_or_backend_stops_the_start_naming_it(
    bind, gateways, write_policy, cli_env, tmp_path, servers, backend, message
):
    _, port = gateways
    haproxy = start_haproxy(tmp_path / "haproxy", servers, port)
    try:
        data = haproxy_policy(bind, port, haproxy)
        data["proxy"]["backend"] = backend  # type: ignore[index]
        run = subprocess.run(
            [*failover_cmd(), "run", "--policy", str(write_policy(data))],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0
        assert message in run.stderr + run.stdout, run.stderr + run.stdout
        # nothing was touched: every server is as HAProxy's configuration left it
        assert set(states(haproxy).values()) == {"ready"}
    finally:
        haproxy.stop()


def test_servers_follow_from_the_first_decision_not_before(bind, gateways, haproxy, write_policy, cli_env, tmp_path):
    """A daemon restarted on a store that already holds west as primary puts west first at once."""
    pool, port = gateways
    policy = write_policy(haproxy_policy(bind, port, haproxy))
    pool.stop("east-a", "east-b")
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [*failover_cmd(), "run", "--policy", str(policy)], env=cli_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wanted = {"east-a": "maint", "east-b": "maint", "west-a": "ready", "west-b": "ready"}
        started = time.monotonic()
        wait_for(lambda: states(haproxy) == wanted, 20, "west ready, dead east in maint")
        assert time.monotonic() - started < 20
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
        log.close()
