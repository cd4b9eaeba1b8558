"""The command against a real BIND and real loopback gateways: cron mode, runbook, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EAST, WEST, failover_cmd, policy_dict

EAST_ADDRS = sorted(EAST.values())
WEST_ADDRS = sorted(WEST.values())
DOMAIN = "api.example.com"


def run(env: dict[str, str], policy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*failover_cmd(), *args, "--policy", str(policy)], env=env, capture_output=True, text=True, timeout=60
    )


def run_json(env: dict[str, str], policy: Path, *args: str) -> Any:
    done = run(env, policy, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def fresh_zone(bind):  # each test starts from an empty record and no marker
    from failover.adapters.rfc2136 import Rfc2136Adapter

    adapter = Rfc2136Adapter(
        DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, bind.algorithm, bind.key_secret)
    )

    def wipe(update: Any) -> None:
        for rdtype in ("A", "AAAA"):
            update.delete(DOMAIN + ".", rdtype)
        update.delete("_failover." + DOMAIN + ".", "TXT")

    adapter.raw_update(wipe)
    return adapter


def test_once_publishes_then_is_idempotent_then_fails_over_across_cron_runs(
    bind, gateways, write_policy, cli_env, fresh_zone
):
    pool, port = gateways
    policy = write_policy(policy_dict(bind, port))

    first = run_json(cli_env, policy, "once")
    assert first[0]["primary"] == "east" and first[0]["adapters"][0]["action"] == "applied"
    assert bind.query(DOMAIN) == EAST_ADDRS
    assert bind.query("_failover." + DOMAIN, "TXT")[0].startswith("epoch=1 primary=east by=east at=")

    second = run_json(cli_env, policy, "once")
    assert second[0]["adapters"][0]["action"] == "noop"

    pool.stop("east-a", "east-b")
    for _ in range(2):  # fall 3: one failure per cron run moves nothing yet
        assert run_json(cli_env, policy, "once")[0]["primary"] == "east"
        assert bind.query(DOMAIN) == EAST_ADDRS
    third = run_json(cli_env, policy, "once")
    assert third[0]["primary"] == "west" and third[0]["kind"] == "failover"
    assert "east down" in third[0]["reason"] and "west elected" in third[0]["reason"]
    assert bind.query(DOMAIN) == WEST_ADDRS
    assert bind.query("_failover." + DOMAIN, "TXT")[0].startswith("epoch=2 primary=west")

    status = run_json(cli_env, policy, "status")
    dom = status["domains"][DOMAIN]
    assert status["service"] == "payments-api" and status["observer"] == "east"
    assert (dom["primary"], dom["secondary"], dom["epoch"], dom["override"]) == ("west", None, 2, None)
    assert dom["regions"]["east"]["healthy"] is False and dom["regions"]["west"]["healthy"] is True
    assert dom["regions"]["east"]["gateways"] == {"east-a": "down", "east-b": "down"}
    assert dom["regions"]["west"]["drained"] is False

    kinds = [e["kind"] for e in run_json(cli_env, policy, "history")]
    assert kinds.index("elected") < kinds.index("failover")
    assert kinds.count("applying") == kinds.count("applied") == 2


def test_a_dead_replica_leaves_the_answer(bind, gateways, write_policy, cli_env, fresh_zone):
    pool, port = gateways
    policy = write_policy(policy_dict(bind, port, health={"rise": 1, "fall": 1}))
    run_json(cli_env, policy, "once")
    pool.stop("east-b")
    out = run_json(cli_env, policy, "once")
    assert out[0]["primary"] == "east"
    assert bind.query(DOMAIN) == ["127.0.0.11"]


def test_runbook_promote_release_drain(bind, gateways, write_policy, cli_env, fresh_zone):
    _, port = gateways
    policy = write_policy(policy_dict(bind, port))
    run_json(cli_env, policy, "once")

    promoted = run(cli_env, policy, "promote", "west", "--reason", "INC-42 east DB maintenance", "--for", "2h")
    assert promoted.returncode == 0, promoted.stderr
    assert bind.query(DOMAIN) == WEST_ADDRS
    override = run_json(cli_env, policy, "status")["domains"][DOMAIN]["override"]
    assert override["region"] == "west" and override["reason"] == "INC-42 east DB maintenance"
    assert override["until"] is not None

    # the daemon's own rules do not undo an override: east is healthy and better, still west
    assert run_json(cli_env, policy, "once")[0]["primary"] == "west"

    released = run(cli_env, policy, "release")
    assert released.returncode == 0, released.stderr
    assert run_json(cli_env, policy, "status")["domains"][DOMAIN]["override"] is None
    assert bind.query(DOMAIN) == WEST_ADDRS  # failback is manual in this policy

    drained = run(cli_env, policy, "drain", "west", "--reason", "kernel upgrade")
    assert drained.returncode == 0, drained.stderr
    assert bind.query(DOMAIN) == EAST_ADDRS
    assert run_json(cli_env, policy, "status")["domains"][DOMAIN]["regions"]["west"]["drained"] is True
    assert run(cli_env, policy, "undrain", "west").returncode == 0

    history = run_json(cli_env, policy, "history")
    details = [(e["kind"], e["detail"]) for e in history]
    assert any(k == "override" and "INC-42" in d for k, d in details)
    assert any(k == "drain" and "kernel upgrade" in d for k, d in details)
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)


def test_promote_refuses_bad_input_and_changes_nothing(bind, gateways, write_policy, cli_env, fresh_zone):
    pool, port = gateways
    policy = write_policy(policy_dict(bind, port))
    run_json(cli_env, policy, "once")
    before = (bind.query(DOMAIN), bind.query("_failover." + DOMAIN, "TXT"))

    unknown = run(cli_env, policy, "promote", "mars", "--reason", "x")
    assert unknown.returncode == 2 and "unknown region 'mars'" in unknown.stderr and "east, west" in unknown.stderr

    pool.stop("west-a", "west-b")
    unhealthy = run(cli_env, policy, "promote", "west", "--reason", "test")
    assert (
        unhealthy.returncode == 1 and "refusing to promote west" in unhealthy.stderr and "--force" in unhealthy.stderr
    )

    bad_for = run(cli_env, policy, "promote", "west", "--reason", "x", "--for", "soon")
    assert bad_for.returncode == 2 and "--for" in bad_for.stderr
    zero_for = run(cli_env, policy, "promote", "west", "--reason", "x", "--for", "0s")
    assert zero_for.returncode == 2 and "longer than zero" in zero_for.stderr

    assert (bind.query(DOMAIN), bind.query("_failover." + DOMAIN, "TXT")) == before
    assert run_json(cli_env, policy, "status")["domains"][DOMAIN]["override"] is None

    forced = run(cli_env, policy, "promote", "west", "--reason", "drill", "--force")
    assert forced.returncode == 0, forced.stderr
    assert bind.query(DOMAIN) == WEST_ADDRS  # forced to a region with no healthy gateway: all of them


def test_plan_and_check_change_nothing(bind, gateways, write_policy, cli_env, fresh_zone):
    pool, port = gateways
    policy = write_policy(policy_dict(bind, port))
    planned = run_json(cli_env, policy, "plan")
    assert planned[0]["adapters"][0]["action"] == "planned"
    assert any("127.0.0.11, 127.0.0.12" in c for c in planned[0]["adapters"][0]["changes"])
    assert bind.query(DOMAIN) == []
    assert run_json(cli_env, policy, "history") == []

    pool.stop("west-b")
    checked = run(cli_env, policy, "check")
    assert checked.returncode == 1  # something is down
    assert "west-b" in checked.stdout and "refused" in checked.stdout
    assert bind.query(DOMAIN) == []


def test_wrong_tsig_secret_is_an_operational_error_and_audited(bind, gateways, write_policy, cli_env, fresh_zone):
    _, port = gateways
    policy = write_policy(policy_dict(bind, port))
    env = dict(cli_env, FAILOVER_TSIG_SECRET="c2VjcmV0LXRoYXQtaXMtd3Jvbmctc2VjcmV0LXRoYXQtaXMtd3Jvbmc=")
    done = run(env, policy, "once")
    assert done.returncode == 1
    assert "TSIG" in done.stdout + done.stderr
    assert bind.query(DOMAIN) == []
    errors = [e for e in run_json(cli_env, policy, "history") if e["kind"] == "error"]
    assert errors and "TSIG" in errors[0]["detail"]
    assert env["FAILOVER_TSIG_SECRET"] not in json.dumps(run_json(cli_env, policy, "history"))


def test_missing_secret_and_unreachable_server(bind, gateways, write_policy, cli_env, fresh_zone):
    _, port = gateways
    policy = write_policy(policy_dict(bind, port))
    env = {k: v for k, v in cli_env.items() if k != "FAILOVER_TSIG_SECRET"}
    missing = run(env, policy, "once")
    assert missing.returncode == 2 and "FAILOVER_TSIG_SECRET is not set" in missing.stderr

    data = policy_dict(bind, port)
    data["domains"][0]["traffic"][0]["server"] = f"127.0.0.1:{bind.port + 1 if bind.port < 65535 else 1}"
    data["domains"][0]["traffic"][0]["timeout"] = "1s"
    unreachable = run(cli_env, write_policy(data), "once")
    assert unreachable.returncode == 1
    assert "unreachable" in unreachable.stdout or "no answer" in unreachable.stdout


def test_validate_reports_access_and_bad_policies(bind, gateways, write_policy, cli_env, tmp_path):
    _, port = gateways
    ok = run(cli_env, write_policy(policy_dict(bind, port)), "validate")
    assert ok.returncode == 0 and "TSIG key failover-test. accepted" in ok.stdout

    data = policy_dict(bind, port)
    data["regions"][1]["gateways"][0]["address"] = "not-an-ip"
    bad = run(cli_env, write_policy(data), "validate")
    assert bad.returncode == 2
    assert "regions[1].gateways[0].address" in bad.stderr and "Traceback" not in bad.stderr
