"""``metrics.statsd``: the policy block, and ``failover run`` pushing to a real StatsD server.

The receiver is Etsy's reference StatsD daemon (tests/support/statsd.py), which parses DogStatsD
tags as well as plain lines: the tests read back what it aggregated through its admin interface
and check that it saw no line it could not parse.
"""

from __future__ import annotations

import math
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import ValidationError

from failover.adapters.rfc2136 import Rfc2136Adapter
from failover.model import ProbeResult, StreakKey
from failover.policy import parse_policy
from failover.policy._metrics import MetricsBlock
from failover.statsd import StatsdSink
from tests.conftest import EAST, WEST, failover_cmd, policy_dict, wait_for
from tests.support.bind import free_port

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which rewrites its asserts
    from tests.support.statsd import StatsdReceiver

pytest_plugins = ["tests.support.statsd"]
DOMAIN = "api.example.com"


# -- the policy block ---------------------------------------------------------------------
def test_a_statsd_block_reads_with_its_defaults() -> None:
    block = MetricsBlock.model_validate({"statsd": {"address": "[::1]:9125"}}).statsd
    assert block is not None
    assert (block.protocol, block.prefix, block.tags, block.interval, block.sample_rate) == (
        "statsd",
        "failover",
        {},
        10.0,
        1.0,
    )
    assert block.host_port == ("::1", 9125)
    named = MetricsBlock.model_validate({"statsd": {"address": "datadog-agent", "protocol": "dogstatsd"}}).statsd
    assert named is not None and named.host_port == ("datadog-agent", 8125)


@pytest.mark.parametrize(
    ("statsd", "says"),
    [
        ({"address": "statsd:99999"}, "'statsd:99999' is not host:port with a port from 1 to 65535"),
        ({"address": "statsd:"}, "is not host:port"),
        ({"address": "stat sd:8125"}, "'stat sd' is neither an IP address nor a host name"),
        ({"address": "127.0.0.1:8125", "tags": {"env": "prod"}}, "tags need protocol: dogstatsd"),
        ({"address": "127.0.0.1", "protocol": "dogstatsd", "tags": {"env": "a,b"}}, "String should match pattern"),
        ({"address": "127.0.0.1", "sample_rate": 0}, "greater than 0"),
        ({"address": "127.0.0.1", "prefix": "failover."}, "String should match pattern"),
        ({"adress": "127.0.0.1"}, "did you mean 'address'"),
    ],
)
def test_a_wrong_statsd_block_says_what_is_wrong(statsd: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricsBlock.model_validate({"statsd": statsd})
    assert says in str(caught.value)


# -- the sink alone against a real StatsD ---------------------------------------------------
async def test_probe_counts_stay_exact_when_latencies_are_sampled(statsd_receiver: StatsdReceiver) -> None:
    receiver = statsd_receiver
    policy = parse_policy(
        {
            "service": "payments-api",
            "observer": "east",
            "regions": [{"name": "east", "gateways": [{"name": "east-a", "address": "127.0.0.11"}]}],
            "domains": [{"name": DOMAIN, "checks": [{"kind": "tcp", "port": 443}]}],
            "metrics": {"statsd": {"address": receiver.address, "protocol": "dogstatsd", "sample_rate": 0.5}},
        }
    )
    sink = StatsdSink(policy)
    await sink.flush()  # resolves the address: from here on the timers go out
    tally = sink.tally(StreakKey(DOMAIN, "east-a", "tcp:443"), "east")
    for i in range(1000):
        sink.record(tally, ProbeResult(i % 4 != 0, 0.010 + i / 1e6, "tcp:443"))
    await sink.stop()
    dims = {"domain": DOMAIN, "region": "east", "gateway": "east-a", "check": "tcp:443"}
    success = receiver.key("failover.probe.results", **dims, outcome="success")
    wait_for(lambda: receiver.counters().get(success) == 750, 10, "750 successes counted, exactly")
    assert receiver.counters()[receiver.key("failover.probe.results", **dims, outcome="failure")] == 250
    samples = receiver.timers()[receiver.key("failover.probe.latency", **dims)]
    assert 350 <= len(samples) <= 650, len(samples)  # half of them, give or take (binomial, sd 16)
    assert receiver.bad_lines() == 0


# -- failover run against a real StatsD -----------------------------------------------------
def _fresh_zone(bind: Any) -> None:
    """No record and no marker left by another test: the first primary is elected here."""
    key = (bind.key_name, bind.algorithm, bind.key_secret)
    adapter = Rfc2136Adapter(DOMAIN, bind.host, bind.port, bind.zone, 30, key)
    adapter.raw_update(lambda u: (u.delete(DOMAIN + ".", "A"), u.delete("_failover." + DOMAIN + ".", "TXT")))


def _run(policy: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [*failover_cmd(), "-v", "run", "--policy", str(policy)], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(daemon: subprocess.Popen[bytes]) -> int:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    return daemon.wait(timeout=20)


def _wait_for_any(receiver: StatsdReceiver, prefix: str) -> None:
    wait_for(
        lambda: any(k.startswith(prefix) for k in receiver.counters()),
        20,
        f"no {prefix}* counter reached StatsD: does failover/services.py start the sink for metrics.statsd?",
    )


def _starting(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k.startswith(prefix)}


def _get(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"}, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


def test_dogstatsd_follows_probes_elections_failover_and_proxy_traffic(
    bind, gateways, write_policy, cli_env, tmp_path: Path, statsd_receiver: StatsdReceiver
) -> None:
    pool, port = gateways
    proxy_port = free_port()
    data = policy_dict(bind, port)
    data["proxy"] = {"listen": f"127.0.0.1:{proxy_port}", "upstream_port": port, "connect_timeout": "500ms"}
    statsd = {"address": statsd_receiver.address, "protocol": "dogstatsd", "tags": {"env": "test"}, "interval": "200ms"}
    data["metrics"] = {"statsd": statsd}
    check = f"http:{port}/ready"
    receiver = statsd_receiver

    def key(name: str, **tags: str) -> str:
        return receiver.key(f"failover.{name}", **tags, env="test")

    def primary_is(region: str) -> Callable[[], bool]:
        def check_gauges() -> bool:
            gauges = receiver.gauges()
            wanted = {r: 1 if r == region else 0 for r in ("east", "west")}
            return all(gauges.get(key("primary", domain=DOMAIN, region=r)) == v for r, v in wanted.items())

        return check_gauges

    _fresh_zone(bind)
    daemon = _run(write_policy(data), cli_env, tmp_path / "daemon.log")
    try:
        _wait_for_any(receiver, "failover.")
        wait_for(primary_is("east"), 20, "primary gauge: east 1, west 0")
        counters = receiver.counters()
        assert counters[key("primary.changes", domain=DOMAIN, kind="elected")] == 1
        for gateway, region in [*((g, "east") for g in EAST), *((g, "west") for g in WEST)]:
            tags = {"domain": DOMAIN, "region": region, "gateway": gateway, "check": check}
            assert counters[key("probe.results", **tags, outcome="success")] >= 2  # rise: 2
            samples = receiver.timers()[key("probe.latency", **tags)]
            assert samples and all(0 <= s < 500 for s in samples if not math.isnan(s)), samples
        wait_for(lambda: receiver.gauges().get(key("region.up", domain=DOMAIN, region="west")) == 1, 10, "west up")
        gauges = receiver.gauges()
        assert gauges[key("region.up", domain=DOMAIN, region="east")] == 1
        assert gauges[key("region.gateways_up", domain=DOMAIN, region="east")] == 2
        assert gauges[key("gateway.up", domain=DOMAIN, region="east", gateway="east-a")] == 1

        answers = [_get(proxy_port) for _ in range(5)]
        assert all(a and a.startswith("ok east") for a in answers), answers
        wait_for(
            lambda: receiver.counters().get(key("proxy.region_connections", region="east"), 0) >= 5,
            10,
            "5 proxied connections to east counted",
        )
        assert receiver.counters()[key("proxy.connections")] >= 5

        pool.stop("east-a", "east-b")
        wait_for(primary_is("west"), 15, "primary gauge: east 0, west 1")
        counters = receiver.counters()
        assert counters[key("primary.changes", domain=DOMAIN, kind="failover")] == 1
        assert counters[key("primary.changes", domain=DOMAIN, kind="elected")] == 1  # no second election
        east_a = {"domain": DOMAIN, "region": "east", "gateway": "east-a", "check": check}
        assert counters[key("probe.results", **east_a, outcome="failure")] >= 3  # fall: 3
        changes = _starting(counters, receiver.key("failover.adapter.changes", domain=DOMAIN, adapter="rfc2136"))
        assert sum(changes.values()) >= 2, counters  # the first publish, then the failover
        assert _starting(receiver.timers(), receiver.key("failover.adapter.apply", domain=DOMAIN, adapter="rfc2136"))
        wait_for(lambda: receiver.gauges().get(key("region.up", domain=DOMAIN, region="east")) == 0, 10, "east down")
        assert receiver.bad_lines() == 0
        assert _stop(daemon) == 0
    finally:
        _stop(daemon)
    assert "statsd: dogstatsd to 127.0.0.1" in (tmp_path / "daemon.log").read_text()


def test_plain_statsd_puts_the_dimensions_in_the_name(
    bind, gateways, write_policy, cli_env, tmp_path: Path, statsd_receiver: StatsdReceiver
) -> None:
    pool, port = gateways
    data = policy_dict(bind, port)
    data["metrics"] = {"statsd": {"address": statsd_receiver.address, "prefix": "edge.failover", "interval": "200ms"}}
    parse_policy(data)  # protocol statsd is the default
    receiver = statsd_receiver
    domain = DOMAIN.replace(".", "_")
    _fresh_zone(bind)
    daemon = _run(write_policy(data), cli_env, tmp_path / "daemon.log")
    try:
        _wait_for_any(receiver, "edge.failover.")
        wait_for(lambda: receiver.gauges().get(f"edge.failover.primary.{domain}.east") == 1, 20, "east is primary")
        pool.stop("east-a", "east-b")
        wait_for(lambda: receiver.gauges().get(f"edge.failover.primary.{domain}.west") == 1, 15, "west is primary")
        gauges, counters, timers = receiver.gauges(), receiver.counters(), receiver.timers()
        assert gauges[f"edge.failover.primary.{domain}.east"] == 0
        assert counters[f"edge.failover.primary.changes.{domain}.failover"] == 1
        assert counters[f"edge.failover.probe.results.{domain}.west.west-a.http_{port}_ready.success"] >= 2
        assert timers[f"edge.failover.probe.latency.{domain}.east.east-b.http_{port}_ready"]
        assert not [k for k in (*gauges, *counters, *timers) if ";" in k], "a plain line carried tags"
        assert receiver.bad_lines() == 0
        assert _stop(daemon) == 0
    finally:
        _stop(daemon)
