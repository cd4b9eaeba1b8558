"""Shared fixtures: a real BIND per test module, real loopback gateways, policy files."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.localgw import LocalGateway, ThreadedGateways
from tests.support.bind import Bind, free_port, start_bind


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    server = start_bind(tmp_path_factory.mktemp("bind"))
    yield server
    server.stop()


@pytest.fixture
def tsig_env(bind: Bind, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAILOVER_TSIG_SECRET", bind.key_secret)
    return bind.key_secret


EAST = {"east-a": "127.0.0.11", "east-b": "127.0.0.12"}
WEST = {"west-a": "127.0.0.21", "west-b": "127.0.0.22"}


@pytest.fixture
def gateways() -> Iterator[tuple[ThreadedGateways, int]]:
    port = free_port()
    pool = ThreadedGateways([LocalGateway(n, a, port) for n, a in {**EAST, **WEST}.items()])
    pool.start()
    yield pool, port
    pool.close()


def policy_dict(bind: Bind, port: int, state: str = "sqlite:///state.db", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": "payments-api",
        "observer": "east",
        "regions": [
            {"name": "east", "priority": 10, "gateways": [{"name": n, "address": a} for n, a in EAST.items()]},
            {"name": "west", "priority": 20, "gateways": [{"name": n, "address": a} for n, a in WEST.items()]},
        ],
        "domains": [
            {
                "name": "api.example.com",
                "checks": [{"kind": "http", "port": port, "path": "/ready", "interval": "1s", "timeout": "500ms"}],
                "traffic": [
                    {
                        "kind": "rfc2136",
                        "server": bind.server,
                        "zone": bind.zone,
                        "ttl": 30,
                        "tsig": {
                            "name": bind.key_name,
                            "algorithm": bind.algorithm,
                            "secret_env": "FAILOVER_TSIG_SECRET",
                        },
                    }
                ],
            }
        ],
        "health": {"rise": 2, "fall": 3},
        "election": {"failback": "manual", "hold_down": "0s", "max_failovers_per_hour": 20},
        "state": {"url": state},
    }
    data.update(overrides)
    return data


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(data: dict[str, Any]) -> Path:
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def wait_for(condition: Callable[[], bool], deadline: float, what: str, interval: float = 0.05) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"{what}: not true within {deadline}s")


def failover_cmd() -> list[str]:
    return [sys.executable, "-m", "failover"]


@pytest.fixture
def cli_env(tsig_env: str) -> dict[str, str]:
    env = dict(os.environ)
    env["FAILOVER_TSIG_SECRET"] = tsig_env
    env.pop("FAILOVER_POLICY", None)
    env.pop("FAILOVER_OBSERVER", None)
    return env
