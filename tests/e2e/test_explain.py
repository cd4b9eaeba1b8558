"""``failover explain`` after real cron runs (``failover once``) against a real BIND and real
loopback gateways, one sqlite store: for each rule that can hold a primary where it is, the
rule named in plain words with its evidence, and the same as JSON."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from failover import render
from tests.conftest import EAST, WEST, failover_cmd, policy_dict

DOMAIN = "api.example.com"
EAST_ADDRS = sorted(EAST.values())
WEST_ADDRS = sorted(WEST.values())


class Cli:
    def __init__(self, env: dict[str, str], policy: Path) -> None:
        self.env, self.policy = env, policy

    def run(self, *args: str, observer: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **({"FAILOVER_OBSERVER": observer} if observer else {})}
        return subprocess.run(
            [*failover_cmd(), *args, "--policy", str(self.policy)], env=env, capture_output=True, text=True, timeout=60
        )

    def ok(self, *args: str, observer: str | None = None) -> str:
        done = self.run(*args, observer=observer)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def once(self, observer: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ok("once", "--json", observer=observer))[0]
        return result

    def explain(self, observer: str | None = None) -> tuple[dict[str, Any], str]:
        """The JSON for the domain, and the text an operator reads: rendered here from the same
        JSON, as the command does (one process less per case; the command's own text is
        checked in test_the_text_and_the_json_say_the_same)."""
        data = json.loads(self.ok("explain", "--json", observer=observer))
        assert data["service"] == "payments-api" and list(data["domains"]) == [DOMAIN]
        return data["domains"][DOMAIN], text_of(data)


def text_of(data: dict[str, Any]) -> str:
    out = io.StringIO()
    render.explanation(Console(file=out, width=200), data)
    return " ".join(out.getvalue().split())


@pytest.fixture
def fresh_zone(bind: Any) -> None:
    from failover.adapters.rfc2136 import Rfc2136Adapter

    Rfc2136Adapter(
        DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, bind.algorithm, bind.key_secret)
    ).raw_update(lambda u: (u.delete(DOMAIN + ".", "A"), u.delete("_failover." + DOMAIN + ".", "TXT")))


@pytest.fixture
def cli(bind: Any, gateways: Any, write_policy: Any, cli_env: dict[str, str], fresh_zone: None) -> Any:
    _, port = gateways

    def make(**overrides: Any) -> Cli:
        data = policy_dict(bind, port, health={"rise": 1, "fall": 1})
        data["election"].update(overrides.pop("election", {}))
        data.update(overrides)
        return Cli(cli_env, write_policy(data))

    return make


def hhmmss(iso: str) -> str:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%H:%M:%S UTC")


def fail_over_to_west(cli: Cli, pool: Any) -> None:
    assert cli.once()["primary"] == "east"
    pool.stop("east-a", "east-b")
    moved = cli.once()
    assert moved["kind"] == "failover" and moved["primary"] == "west"


@pytest.mark.parametrize("rule", ["hold_down", "budget"])
def test_a_move_refused_by_the_hold_down_or_the_budget(cli: Any, gateways: Any, bind: Any, rule: str) -> None:
    pool, _ = gateways
    election = {"hold_down": "1h", "max_failovers_per_hour": 20} if rule == "hold_down" else {"hold_down": "0s"}
    if rule == "budget":
        election["max_failovers_per_hour"] = 1
    c = cli(election=election)
    fail_over_to_west(c, pool)
    pool.start("east-a", "east-b")
    pool.stop("west-a", "west-b")
    held = c.once()
    assert held["kind"] == "hold" and held["primary"] == "west"
    assert bind.query(DOMAIN) == WEST_ADDRS

    info, text = c.explain()
    assert (info["primary"], info["rule"], info["decision"]["kind"]) == ("west", rule, "hold")
    assert info["details"]["region"] == "east"
    assert info["regions"]["west"]["status"] == "down" and info["regions"]["east"]["status"] == "up"
    west_a = info["regions"]["west"]["gateways"]["west-a"]
    assert west_a["status"] == "down" and west_a["checks"][0]["last"] and west_a["checks"][0]["failures"] >= 1
    assert len(info["last_decision"]["automatic_changes"]) == 1
    if rule == "hold_down":
        until = info["details"]["until"]
        changed = dt.datetime.fromisoformat(info["last_decision"]["automatic_changes"][0].replace("Z", "+00:00"))
        assert dt.datetime.fromisoformat(until.replace("Z", "+00:00")) == changed + dt.timedelta(hours=1)
        assert f"the hold-down keeps west until {hhmmss(until)}" in text
        assert "west is down" in text and "east could take over" in text
    else:
        assert (info["details"]["used"], info["details"]["limit"]) == (1, 1)
        assert "the failover budget is spent: 1 automatic change in the last hour (max_failovers_per_hour 1)" in text


def test_an_override_by_whom_until_when(cli: Any, gateways: Any, bind: Any) -> None:
    c = cli()
    c.once()
    c.ok("promote", "west", "--reason", "INC-7 east database failover", "--for", "2h", "--by", "alice")
    assert bind.query(DOMAIN) == WEST_ADDRS
    info, text = c.explain()
    assert (info["primary"], info["rule"]) == ("west", "override")
    override = info["override"]
    assert (override["region"], override["by"], override["reason"]) == ("west", "alice", "INC-7 east database failover")
    assert f"west is pinned by alice until {hhmmss(override['until'])}: INC-7 east database failover" in text
    assert info["regions"]["east"]["status"] == "up"  # healthy and preferred, and still not primary


def test_fail_static_when_every_region_is_down(cli: Any, gateways: Any, bind: Any) -> None:
    pool, _ = gateways
    c = cli()
    c.once()
    pool.stop("east-a", "east-b", "west-a", "west-b")
    assert c.once()["kind"] == "fail_static"
    assert bind.query(DOMAIN) == EAST_ADDRS
    info, text = c.explain()
    assert (info["primary"], info["rule"], info["decision"]["kind"]) == ("east", "fail_static", "fail_static")
    assert "every region is down: east stays (fail static)" in text
    for region in ("east", "west"):
        for gw in info["regions"][region]["gateways"].values():
            assert gw["status"] == "down" and "refused" in gw["checks"][0]["last"]


def test_failback_waits_so_many_more_seconds(cli: Any, gateways: Any) -> None:
    pool, _ = gateways
    c = cli(election={"failback": "auto", "failback_after": "10m"})
    fail_over_to_west(c, pool)
    pool.start("east-a", "east-b")
    kept = c.once()
    assert kept["primary"] == "west" and "fails back after 10.0m" in kept["reason"]
    info, text = c.explain()
    assert (info["primary"], info["rule"], info["details"]["region"]) == ("west", "failback_wait", "east")
    assert 500 < info["details"]["wait"] <= 600
    assert re.search(r"east is preferred and healthy again; failback waits (\d+) more seconds", text)


def test_a_drained_preferred_region_then_a_manual_failback(cli: Any, bind: Any) -> None:
    c = cli()
    c.once()
    c.ok("drain", "east", "--reason", "kernel upgrade", "--by", "bob")
    assert bind.query(DOMAIN) == WEST_ADDRS
    info, text = c.explain()
    assert (info["primary"], info["rule"], info["details"]["region"]) == ("west", "drain", "east")
    assert info["regions"]["east"]["drained"]["by"] == "bob"
    assert "east is preferred but drained by bob since" in text and "kernel upgrade" in text
    assert "failover undrain east" in text

    c.ok("undrain", "east")
    assert bind.query(DOMAIN) == WEST_ADDRS  # back in election, and failback is manual
    info, text = c.explain()
    assert (info["primary"], info["rule"], info["regions"]["east"]["drained"]) == ("west", "failback_manual", None)
    assert "failback is manual: failover promote east --reason ... moves it back" in text


def test_no_quorum_names_who_reports_and_who_is_silent(cli: Any, gateways: Any, bind: Any) -> None:
    """Three voters (east, west, witness) share one store, and only east runs: no verdict, so
    nothing is published; an operator pins east and releases it; then east's gateways fail
    and nothing moves, because one voter of three is no quorum."""
    pool, _ = gateways
    c = cli(observers=["east", "west", "witness"])
    assert c.once()["kind"] == "waiting"
    info, text = c.explain()
    assert (info["primary"], info["rule"]) == (None, "waiting")
    assert info["quorum"]["silent"] == ["west", "witness"]
    assert "nothing is published yet: waiting for a first verdict on east (no quorum: 1/3 observers" in text
    c.ok("promote", "east", "--reason", "pin while west is rebuilt", "--force")
    c.ok("release")
    pool.stop("east-a", "east-b")
    held = c.once()
    assert (held["kind"], held["primary"]) == ("fail_static", "east")
    assert bind.query(DOMAIN) == EAST_ADDRS
    info, text = c.explain()
    assert (info["primary"], info["rule"]) == ("east", "no_quorum")
    assert info["quorum"] == {
        "voters": ["east", "west", "witness"],
        "reporting": ["east"],
        "silent": ["west", "witness"],
        "needed": 2,
    }
    assert info["regions"]["east"]["observers"] == {"east": "down"}
    assert "no quorum (1/3 voters report, 2 needed; silent: west, witness): nothing moves automatically" in text


def test_the_text_and_the_json_say_the_same(cli: Any, gateways: Any) -> None:
    pool, _ = gateways
    c = cli()
    c.once()
    pool.stop("east-b")
    c.once()
    data = json.loads(c.ok("explain", "--json"))
    info = data["domains"][DOMAIN]
    assert (info["primary"], info["rule"]) == ("east", "healthy")
    text = " ".join(c.ok("explain", "--domain", DOMAIN).split())
    stamp = re.compile(r"at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # each run says when it looked
    assert stamp.sub("at T", text) == stamp.sub("at T", text_of(data))
    assert "east is healthy (1/2 gateways up) and no better region waits: nothing to do" in text
    assert re.search(r"east-b=down: http:\d+/ready: connection refused", text)
    assert re.search(r"east-a=up: http:\d+/ready: 200 in \d+ms", text)
    unknown = c.run("explain", "--domain", "nope.example.com")
    assert unknown.returncode == 2 and "unknown domain" in unknown.stderr
