"""``failover validate --offline``: the file alone, no network, exit 0 valid / 2 invalid; several
files as pre-commit passes them; and the hook this repository ships, run as pre-commit runs it."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from failover.cli import main

REPO = Path(__file__).resolve().parents[2]


def policy(**overrides: Any) -> dict[str, Any]:
    """Every kind of endpoint the online check would dial: DNS server, AWS, etcd (all loopback)."""
    data: dict[str, Any] = {
        "service": "payments-api",
        "observer": "east",
        "regions": [
            {"name": "east", "priority": 1, "gateways": [{"name": "east-a", "address": "127.0.0.11"}]},
            {"name": "west", "priority": 2, "gateways": [{"name": "west-a", "address": "127.0.0.21"}]},
        ],
        "domains": [
            {
                "name": "api.example.com",
                "checks": [{"kind": "http", "port": 8080, "path": "/ready"}],
                "traffic": [
                    {
                        "kind": "rfc2136",
                        "server": "127.0.0.1:1",
                        "zone": "example.com",
                        "tsig": {"name": "k", "algorithm": "hmac-sha256", "secret_env": "NOT_SET_ANYWHERE"},
                    }
                ],
            }
        ],
        "state": {"url": "etcd://127.0.0.1:9/failover"},
    }
    data.update(overrides)
    return data


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any attempt to resolve or dial is recorded and refused."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name}{args[1:2]}")
            raise OSError(f"network I/O during an offline check: {name}")

        return call

    for name in ("connect", "connect_ex", "sendto", "sendall", "send"):
        monkeypatch.setattr(socket.socket, name, refuse(name))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.delenv("FAILOVER_OBSERVER", raising=False)
    monkeypatch.delenv("FAILOVER_POLICY", raising=False)
    return attempts


def test_offline_checks_the_file_and_touches_no_network(
    tmp_path: Path, no_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "policy.yaml", policy())
    result = CliRunner().invoke(main, ["validate", "--offline", "--policy", str(path)])
    assert result.exit_code == 0, result.output
    assert f"policy {path} is valid: 2 regions, 1 domains (offline" in result.output
    assert no_network == []
    # online, the same file is dialled (so the guard above would have seen it) and fails
    monkeypatch.setenv("NOT_SET_ANYWHERE", "c2VjcmV0")
    online = CliRunner().invoke(main, ["validate", "--policy", str(path)])
    assert online.exit_code == 1, online.output
    assert no_network, "the online check opened no socket: the guard proves nothing"


def test_offline_refuses_bad_references_and_timings_with_exit_2(tmp_path: Path, no_network: list[str]) -> None:
    bad_reference = policy(observers=["east", "west", "east"])
    bad_timing = policy(state={"url": "etcd://127.0.0.1:9/failover", "ttl": "2s", "loop_wait": "5s"})
    for name, data in (("ref.yaml", bad_reference), ("timing.yaml", bad_timing)):
        path = write(tmp_path / name, data)
        result = CliRunner().invoke(main, ["validate", "--offline", str(path)])
        assert result.exit_code == 2, (name, result.output)
        assert f"invalid policy {path}" in result.output
    assert no_network == []


def test_several_files_each_validated_exit_2_when_one_is_invalid(tmp_path: Path, no_network: list[str]) -> None:
    good = write(tmp_path / "good.yaml", policy())
    other = write(tmp_path / "other.yaml", policy(service="orders-api"))
    bad = write(tmp_path / "bad.yaml", {**policy(), "regions": [{"name": "east", "prioirty": 1}]})
    both = CliRunner().invoke(main, ["validate", "--offline", str(good), str(other)])
    assert both.exit_code == 0, both.output
    assert both.output.count("is valid") == 2
    mixed = CliRunner().invoke(main, ["validate", "--offline", str(good), str(bad), str(other)])
    assert mixed.exit_code == 2
    assert mixed.output.count("is valid") == 2  # the files after the bad one are still checked
    assert "regions[0].prioirty" in mixed.output and str(bad) in mixed.output
    missing = CliRunner().invoke(main, ["validate", "--offline", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read policy" in missing.output
    assert no_network == []


def hook() -> dict[str, Any]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    return next(h for h in hooks if h["id"] == "failover-validate")


def test_the_hook_picks_policy_files_and_not_other_yaml() -> None:
    files = re.compile(hook()["files"])
    for picked in ("policy.yaml", "policies/payments.yaml", "deploy/failover-eu.yml", "prod/policy-orders.yaml"):
        assert files.search(picked), picked
    for left in (".pre-commit-config.yaml", "deploy/kubernetes/kustomization.yaml", ".github/workflows/ci.yml"):
        assert not files.search(left), left


def test_the_hook_entry_as_pre_commit_runs_it(tmp_path: Path) -> None:
    """pre-commit runs ``entry`` with the staged file names appended, from the repository root,
    with the hook's package installed (its ``failover`` script on PATH)."""
    entry = shlex.split(hook()["entry"])
    script = Path(sys.executable).parent / entry[0]
    assert script.exists(), f"the console script {entry[0]} is not installed beside {sys.executable}"
    (tmp_path / "policies").mkdir()
    good = write(tmp_path / "policies" / "payments.yaml", policy())
    bad = write(tmp_path / "policies" / "orders.yaml", policy(observer=""))
    env = {k: v for k, v in os.environ.items() if k not in ("FAILOVER_OBSERVER", "FAILOVER_POLICY")}

    def run(*files: Path) -> subprocess.CompletedProcess[str]:
        names = [str(f.relative_to(tmp_path)) for f in files]
        return subprocess.run(
            [str(script), *entry[1:], *names], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    passed = run(good)
    assert passed.returncode == 0, passed.stderr
    assert "payments.yaml is valid" in passed.stdout
    failed = run(good, bad)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "payments.yaml is valid" in failed.stdout
    assert "invalid policy" in failed.stderr and "orders.yaml" in failed.stderr and "observer" in failed.stderr
    assert "Traceback" not in failed.stderr
