"""Every curl command of docs/runbook.md, copied as an operator would paste it, works against a
running daemon (regions east and west, as in the runbook), in the order the runbook gives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from failover.localgw import ThreadedGateways
from failover.policy import parse_policy
from tests.conftest import WEST, wait_for
from tests.integration.test_api import TOKEN_ENV, api_policy, zone_addresses
from tests.support.daemon import DaemonThread

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


def curl_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]
    return commands


def test_the_runbook_has_curl_commands_for_every_operation() -> None:
    text = " ".join(curl_commands())
    for path in ("/healthz", "/readyz", "/v1/status", "/v1/promote", "/v1/release", "/v1/drain", "/v1/undrain"):
        assert path in text, path


def test_every_curl_command_of_the_runbook_works(
    tmp_path: Path, gateways: tuple[ThreadedGateways, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (shutil.which("curl") and shutil.which("jq")):
        message = "curl and jq are needed to run the runbook's commands: apt-get install -y curl jq"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    _pool, port = gateways
    token = "tok-runbook-" + os.urandom(8).hex()
    monkeypatch.setenv(TOKEN_ENV, token)
    policy = parse_policy(api_policy(tmp_path, port))
    assert policy.api is not None
    base = f"http://{policy.api.listen}"
    daemon = DaemonThread(policy).start()
    try:
        wait_for(lambda: httpx.get(base + "/readyz").status_code == 200, 15, "ready")
        env = {**os.environ, "FAILOVER_API": base, "FAILOVER_API_TOKEN": token}
        seen = []
        for command in curl_commands():
            done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            seen.append(done.stdout)
            if "/v1/promote" in command:
                assert zone_addresses(tmp_path / "zone.db") == sorted(WEST.values())
            if "/v1/drain" in command:
                assert zone_addresses(tmp_path / "zone.db") == sorted(WEST.values())  # east drained
        assert '"verified": true' in " ".join(seen)
        # and with the token wrong, the same command is refused (curl -f: exit 22)
        bad = next(c for c in curl_commands() if "/v1/undrain" in c)
        done = subprocess.run(
            ["bash", "-c", bad], env={**env, "FAILOVER_API_TOKEN": "wrong"}, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 22 and "401" in done.stderr
        assert zone_addresses(tmp_path / "zone.db") == sorted(WEST.values())
    finally:
        daemon.stop()
