"""``failover run`` logs: one JSON object per line with ``--log-format json``, readable text
otherwise; the decision sentence of each evaluation is in both, without ``-v``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from failover.localgw import ThreadedGateways
from tests.conftest import failover_cmd, wait_for
from tests.integration.test_api import DOMAIN, TOKEN_ENV, api_policy


def run_daemon(tmp_path: Path, port: int, *flags: str) -> str:
    data = api_policy(tmp_path, port)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(data))
    env = {**os.environ, TOKEN_ENV: "tok-logs-0123456789"}
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [*failover_cmd(), *flags, "run", "--policy", str(policy)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://{data['api']['listen']}"

            def ready() -> bool:
                try:
                    return httpx.get(base + "/readyz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(ready, 20, "the daemon is ready")
            assert httpx.post(base + "/v1/drain", json={"region": "east"}).status_code == 401
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(10)
    return log.read_text()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_every_event_is_logged_and_the_decision_sentence_in_both_formats(
    tmp_path: Path, gateways: tuple[ThreadedGateways, int], fmt: str
) -> None:
    _pool, port = gateways
    text = run_daemon(tmp_path, port, "--log-format", fmt)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    if fmt == "json":
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
        messages = [r["msg"] for r in records]
        refused = next(r for r in records if "missing or wrong bearer token" in r["msg"])
        assert refused["level"] == "warning" and refused["path"] == "/v1/drain" and refused["peer"] == "127.0.0.1"
    else:
        messages = lines
    assert any(f"{DOMAIN}: east elected (" in m for m in messages), text  # 1/2 or 2/2: probes race
    assert any("admin API listening on http://127.0.0.1:" in m for m in messages)
    assert any("daemon stopped" in m for m in messages)
