"""`failover demo --cluster`: three coordinators on a local etcd, unattended. One observer cut off
moves nothing, a real outage fails over by quorum, a crashed leader is replaced within the lease
TTL and the records stay on west; without etcd it says what to install and exits 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

from tests.conftest import failover_cmd
from tests.support.etcd import require_etcd

TTL = 3.0  # the demo's lease


def _run(args: list[str], timeout: float = 110) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env=dict(os.environ, CI="true"),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _figure(pattern: str, out: str) -> float:
    found = re.search(pattern, out)
    assert found is not None, f"{pattern!r} not in:\n{out}"
    return float(found.group(1))


def test_cluster_demo_runs_unattended_through_its_four_phases():
    require_etcd()
    done = _run([*failover_cmd(), "demo", "--cluster", "--speed", "0.2"])
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for phase in ("1. electing", "2. one observer cut off", "3. east fails", "4. the leader is killed"):
        assert phase in out, out
    # 2: west alone sees east down; the vote is in etcd and nothing moves
    assert re.search(r"votes on east: east up, west DOWN, witness up \(1 of 3 down, 2 needed\)", out), out
    assert "decides: no action: east is primary" in out, out
    assert _figure(r"nothing moved in the ([\d.]+)s since the cut", out) >= 3.0
    # 3: failover by quorum, within fall x interval plus a few seconds
    assert re.search(r"failover: east down .*\[seen by [23]/3: .*\]\]; west elected", out), out
    assert 0 < _figure(r"DNS on west\s+([\d.]+)s after east's gateways died", out) < 8
    # 4: a new leader once the crashed one's lease expired (not before: it did not resign), fenced
    killed = re.search(r"crashing the leader (\w+)", out)
    assert killed is not None, out
    summary = r"(\w+) leads ([\d.]+)s after (\w+) crashed \(lease ttl 3s\); marker token (\d+) -> (\d+)"
    successor = re.search(summary, out)
    assert successor is not None, out
    new, took, old, old_token, new_token = successor.groups()
    assert old == killed.group(1) and new != old, out
    assert TTL - 1.0 < float(took) < TTL + 3.0, out
    assert int(new_token) > int(old_token), out
    assert "records stayed on west" in out, out
    alive = re.search(r"coordinators alive: ([\w, ]+) \((\w+)'s session lease expired with it\)", out)
    assert alive is not None and alive.group(2) == old, out
    assert sorted(alive.group(1).split(", ")) == sorted({"east", "west", "witness"} - {old}), out
    assert "shutdown:" not in done.stderr, done.stderr  # every shutdown step finished in time


def test_a_broken_quorum_is_caught_by_the_demo_naming_the_phase():
    # A verdict that takes one observer's word for it: west's broken view now moves traffic,
    # and the demo must say so and exit 1 instead of printing its summary.
    require_etcd()
    script = textwrap.dedent(
        """
        import sys
        from failover import health
        from failover.model import RegionHealth, Status

        def any_down(views, voters, region):
            down = [v for v in views.values() if v.status is Status.DOWN]
            first = (down or list(views.values()))[0]
            return RegionHealth(region, first.status, first.up, first.total, first.since, first.reason)

        health.voters_verdict = any_down
        from failover.demo.cluster import run_cluster_demo
        sys.exit(run_cluster_demo(speed=0.2))
        """
    )
    done = _run([sys.executable, "-c", script])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "demo: one observer cut off: the zone file changed while only west saw east down" in done.stdout, (
        done.stdout + done.stderr
    )
    assert "summary" not in done.stdout


def test_without_etcd_it_names_the_package_and_exits_2():
    script = textwrap.dedent(
        """
        import sys
        import failover.demo.cluster as cluster
        cluster.etcd_binary = lambda: None
        sys.exit(cluster.run_cluster_demo())
        """
    )
    done = _run([sys.executable, "-c", script], timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "apt-get install etcd-server" in done.stderr, done.stderr
