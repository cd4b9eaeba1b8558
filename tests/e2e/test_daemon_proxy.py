"""`failover run` with a `proxy` block carries traffic, and keeps carrying it through a failover."""

from __future__ import annotations

import subprocess
import time

import httpx

from tests.conftest import failover_cmd, policy_dict, wait_for
from tests.support.bind import free_port


def get(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"}, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


def test_proxy_follows_the_primary_and_survives_its_death(bind, gateways, write_policy, cli_env, tmp_path):
    pool, port = gateways
    proxy_port = free_port()
    data = policy_dict(bind, port)
    data["proxy"] = {
        "listen": f"127.0.0.1:{proxy_port}",
        "upstream_port": port,
        "connect_timeout": "500ms",
        "drain_time": "1s",
    }
    policy = write_policy(data)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [*failover_cmd(), "run", "--policy", str(policy)], env=cli_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: (get(proxy_port) or "").startswith("ok east"), 20, "traffic through the proxy to east")
        pool.stop("east-a", "east-b")
        # a client arriving right after the kill is relayed to west at once, long before DNS moves
        killed = time.monotonic()
        wait_for(lambda: (get(proxy_port) or "").startswith("ok west"), 5, "traffic relayed to west")
        assert time.monotonic() - killed < 2.0
        answers = {get(proxy_port) for _ in range(20)}
        assert answers <= {"ok west-a", "ok west-b"}, answers
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
        log.close()
    assert "proxy listening on 127.0.0.1" in (tmp_path / "daemon.log").read_text()
