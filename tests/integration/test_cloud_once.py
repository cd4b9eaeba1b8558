"""`failover once` with a route53 policy, end to end: the command as a subprocess, real
gateways on loopback, Route 53 emulated by moto's server, reached via AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from failover.localgw import ThreadedGateways
from tests.conftest import EAST, WEST, failover_cmd
from tests.support.moto import Moto, moto_server  # noqa: F401  (fixture)

DOMAIN = "api.example.com"
EAST_ADDRS = sorted(EAST.values())
WEST_ADDRS = sorted(WEST.values())


@pytest.fixture
def zone(moto_server: Moto) -> str:  # noqa: F811
    answer = moto_server.client("route53").create_hosted_zone(Name="example.com.", CallerReference=os.urandom(8).hex())
    zone_id: str = answer["HostedZone"]["Id"].split("/")[-1]
    return zone_id


@pytest.fixture
def env(moto_server: Moto, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FAILOVER_"))}
    out.update(moto_server.env())
    out["AWS_CONFIG_FILE"] = out["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return out


def policy(port: int, zone_id: str) -> dict[str, Any]:
    return {
        "service": "payments-api",
        "observer": "east",
        "regions": [
            {"name": "east", "priority": 10, "gateways": [{"name": n, "address": a} for n, a in EAST.items()]},
            {"name": "west", "priority": 20, "gateways": [{"name": n, "address": a} for n, a in WEST.items()]},
        ],
        "domains": [{
            "name": DOMAIN,
            "checks": [{"kind": "http", "port": port, "path": "/ready", "interval": "1s", "timeout": "500ms"}],
            "traffic": [{"kind": "route53", "hosted_zone_id": zone_id, "ttl": 30, "max_attempts": 2, "wait": "10s"}],
        }],
        "health": {"rise": 1, "fall": 1},
        "election": {"failback": "manual", "hold_down": "0s", "max_failovers_per_hour": 20},
        "state": {"url": "sqlite:///state.db"},
    }


def published(moto: Moto, zone_id: str) -> tuple[list[str], str | None]:
    sets = moto.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    a = next((r for r in sets if r["Name"] == DOMAIN + "." and r["Type"] == "A"), None)
    txt = next((r for r in sets if r["Name"] == f"_failover.{DOMAIN}." and r["Type"] == "TXT"), None)
    return (sorted(v["Value"] for v in a["ResourceRecords"]) if a else [],
            txt["ResourceRecords"][0]["Value"].strip('"') if txt else None)


def test_once_moves_a_route53_record(
    moto_server: Moto,  # noqa: F811
    zone: str,
    env: dict[str, str],
    gateways: tuple[ThreadedGateways, int],
    write_policy: Callable[[dict[str, Any]], Path],
) -> None:
    pool, port = gateways
    path = write_policy(policy(port, zone))

    def failover(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*failover_cmd(), *args, "--policy", str(path)], env=env, capture_output=True,
                              text=True, timeout=60)

    checked = failover("validate")
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert f"route53 {zone}" in checked.stdout

    first = failover("once", "--json")
    assert first.returncode == 0, first.stderr
    outcome = json.loads(first.stdout)[0]
    assert outcome["primary"] == "east" and outcome["adapters"][0]["action"] == "applied"
    records, marker = published(moto_server, zone)
    assert records == EAST_ADDRS and marker is not None and marker.startswith("epoch=1 primary=east by=east at=")

    before = moto_server.calls["ChangeResourceRecordSets"]
    again = failover("once", "--json")
    assert json.loads(again.stdout)[0]["adapters"][0]["action"] == "noop"
    assert moto_server.calls["ChangeResourceRecordSets"] == before  # nothing sent

    pool.stop(*EAST)
    moved = failover("once", "--json")
    assert moved.returncode == 0, moved.stderr
    outcome = json.loads(moved.stdout)[0]
    assert (outcome["primary"], outcome["kind"], outcome["adapters"][0]["action"]) == ("west", "failover", "applied")
    records, marker = published(moto_server, zone)
    assert records == WEST_ADDRS and marker is not None and marker.startswith("epoch=2 primary=west")


def test_wrong_aws_credentials_exit_1_and_change_nothing(
    moto_server: Moto,  # noqa: F811
    zone: str,
    env: dict[str, str],
    gateways: tuple[ThreadedGateways, int],
    write_policy: Callable[[dict[str, Any]], Path],
) -> None:
    _, port = gateways
    path = write_policy(policy(port, zone))
    env = {**env, "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-the-key"}
    before = moto_server.calls["ChangeResourceRecordSets"]
    with moto_server.iam_enforced():  # from here on moto checks keys as AWS does
        once = subprocess.run([*failover_cmd(), "once", "--policy", str(path)], env=env, capture_output=True,
                              text=True, timeout=60)
        validate = subprocess.run([*failover_cmd(), "validate", "--policy", str(path)], env=env,
                                  capture_output=True, text=True, timeout=60)
    assert once.returncode == 1, once.stdout + once.stderr
    assert "rejected the credentials" in once.stdout + once.stderr
    assert validate.returncode == 1 and "InvalidClientTokenId" in validate.stdout + validate.stderr
    assert moto_server.calls["ChangeResourceRecordSets"] == before
    assert published(moto_server, zone) == ([], None)
