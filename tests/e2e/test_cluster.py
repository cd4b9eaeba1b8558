"""Three coordinators (east, west, witness) as one system, with real parts: a three-member etcd
cluster, BIND with TSIG, gateways on 127.0.0.x, each coordinator a ``failover run`` process under
its own uid, cut off with nftables (``meta skuid``) the way a broken link cuts it off.

Every scenario asserts from BIND's own records (A and the ``_failover.<domain>`` marker) and
etcd's leader key, never from the coordinators' logs, with deadlines; the timings measured are
listed under "cluster figures" at the end of the run.

(a) east's gateways die: west published within fall x interval + 2 s.
(b) west alone cannot reach east's gateways: nothing changes; status shows west's vote. Nor
    when the leader alone cannot reach one of east's gateways: a gateway leaves the answer only
    when a majority of the voters see it down.
(c) the leader is killed, or cut off from etcd: a new leader within the lease, a higher token
    in the marker, nothing written by the old one after its local deadline; promote works.
(d) etcd loses quorum: nothing moves though east dies, nobody crashes, status exits 1; the
    failover happens by itself once etcd is back.

One etcd cluster and one BIND serve the module; each test has its own key prefix, DNS name,
gateways and three coordinators.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The helpers are plugins of this module too (pytest_plugins below): have their asserts rewritten.
pytest.register_assert_rewrite("tests.support.cluster", "tests.support.etcd")

from failover.localgw import ThreadedGateways  # noqa: E402
from tests.conftest import EAST  # noqa: E402
from tests.support.bind import Bind  # noqa: E402
from tests.support.cluster import (  # noqa: E402
    EAST_ADDRS,
    FALL,
    INTERVAL,
    LOOP_WAIT,
    OBSERVERS,
    RETRY_TIMEOUT,
    TTL,
    UIDS,
    WEST_ADDRS,
    Cluster,
    Firewall,
    Published,
    require_cluster_tools,
)
from tests.support.etcd import EtcdCluster  # noqa: E402

pytest_plugins = ["tests.support.etcd", "tests.support.cluster"]
pytestmark = pytest.mark.bind

Gateways = tuple[ThreadedGateways, int]
Measured = Callable[[str, float, str], None]

FAILOVER_BOUND = FALL * INTERVAL + 2.0  # the contract: fall x interval + 2 s
STEADY_WINDOW = 3 * FALL * INTERVAL  # how long "nothing changes" is watched


@pytest.fixture(scope="module", autouse=True)
def _cluster_tools() -> None:
    require_cluster_tools()


@pytest.fixture
def cluster(
    bind: Bind, etcd_cluster: EtcdCluster, gateways: Gateways, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """Three coordinators; parametrized indirectly with an observer name, that one leads."""
    _pool, port = gateways
    running = Cluster(bind, etcd_cluster, port, tmp_path, request.node.name)
    try:
        running.start(first=getattr(request, "param", None))
        yield running
    finally:
        running.close()


def west_published(p: Published) -> bool:
    return p.addresses == WEST_ADDRS and p.marker is not None and p.marker.primary == "west"


def hold_steady(cluster: Cluster, expected: Published, until: float, what: str) -> None:
    """Until ``until`` (monotonic), BIND keeps showing ``expected`` and no coordinator exits;
    fails at the first difference."""
    while time.monotonic() < until:
        now = cluster.recorder.latest()
        assert now == expected, f"{what}: BIND changed from {expected} to {now}\n{cluster.logs()}"
        exited = {c.name: c.process.returncode for c in cluster.coordinators.values()
                  if c.process is not None and c.process.poll() is not None}
        assert not exited, f"{what}: coordinator(s) exited: {exited}\n{cluster.logs()}"
        time.sleep(0.1)


def wait_status(
    cluster: Cluster, condition: Callable[[dict[str, Any]], bool], deadline: float, what: str
) -> tuple[float, dict[str, Any]]:
    """Poll ``failover status --json`` (a CLI run takes about a second) until ``condition``."""
    end = time.monotonic() + deadline
    last: object = None
    while True:
        result = cluster.status()
        if result.returncode == 0 and result.data is not None and condition(result.data):
            return time.monotonic(), result.data
        last = result.data if result.data is not None else (result.returncode, result.stderr)
        if time.monotonic() >= end:
            raise AssertionError(f"{what}: not within {deadline}s; status: {last}\n{cluster.logs()}")
        time.sleep(0.2)


def region(data: dict[str, Any], cluster: Cluster, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = data["domains"][cluster.domain]["regions"][name]
    return entry


# -- (a) ---------------------------------------------------------------------------------------------
def test_a_primary_gateways_die_west_is_published_within_fall_times_interval_plus_2s(
    cluster: Cluster, gateways: Gateways, measured: Measured
) -> None:
    pool, _ = gateways
    leader, token = cluster.wait_ready()
    before = cluster.recorder.latest()
    assert before is not None and before.marker is not None

    killed = time.monotonic()
    pool.stop("east-a", "east-b")
    flipped = cluster.recorder.wait(west_published, killed, FAILOVER_BOUND + 5, "west published")
    took = flipped - killed
    measured("failover after east's gateways died", took, f"bound fall x interval + 2 s = {FAILOVER_BOUND:g}s")
    assert took <= FAILOVER_BOUND, f"failover took {took:.2f}s\n{cluster.logs()}"

    # Straight from east to west, epoch + 1, written by the same leader under its token. On the
    # way the leader may drop a gateway it saw die first from east's records: east still.
    changes = [s.published for s in cluster.recorder.since(killed)]
    after = changes[-1]
    for between in changes[1:-1]:
        assert between.marker == before.marker and between.addresses, changes
        assert set(between.addresses) < set(EAST_ADDRS), changes
    assert after.marker is not None
    assert (after.marker.epoch, after.marker.by, after.marker.token) == (before.marker.epoch + 1, leader, token)
    assert cluster.leader() == (leader, token)

    # a majority of the observers saw east down: that is what moved it
    _, data = wait_status(cluster, lambda d: d["domains"][cluster.domain]["primary"] == "west", 10, "status west")
    assert data["leader"] == leader
    assert len(region(data, cluster, "east")["observers_down"]) >= 2, region(data, cluster, "east")


# -- (b) ---------------------------------------------------------------------------------------------
# The witness leads: with west leading, its own gateway verdicts reach the A records (the bug
# of the next test), so whether east-a or east-b goes first decides what this test would see.
@pytest.mark.parametrize("cluster", ["witness"], indirect=True)
def test_b_one_observer_cut_off_from_the_primary_changes_nothing(
    cluster: Cluster, firewall: Firewall, measured: Measured
) -> None:
    assert cluster.wait_ready()[0] == "witness"
    start = cluster.recorder.latest()
    assert start is not None

    cut = time.monotonic()
    firewall.cut(UIDS["west"], EAST.values(), [cluster.gateway_port], how="drop")

    def west_alone_sees_east_down(data: dict[str, Any]) -> bool:
        return bool(region(data, cluster, "east")["observers_down"] == ["west"])

    seen, data = wait_status(cluster, west_alone_sees_east_down, FALL * INTERVAL + 10, "west's DOWN vote for east")
    measured("west's lone DOWN vote visible in status", seen - cut, "fall x interval + a status run")
    hold_steady(cluster, start, max(seen, cut) + STEADY_WINDOW, "one observer cut off from east's gateways")
    assert [s.published for s in cluster.recorder.since(cut)] == [start]

    _, data = wait_status(cluster, west_alone_sees_east_down, 5, "west's vote still counted")
    east = region(data, cluster, "east")
    assert (east["status"], east["healthy"]) == ("up", True), east
    assert data["domains"][cluster.domain]["primary"] == "east"
    assert data["leader"] == "witness"
    assert all(o["alive"] for o in data["observers"].values()), data["observers"]


@pytest.mark.parametrize("cluster", ["west"], indirect=True)
def test_b_the_leader_cut_off_from_one_primary_gateway_changes_nothing(
    cluster: Cluster, firewall: Firewall, measured: Measured
) -> None:
    """The same partition, narrower: the leader alone cannot reach east-a; the other two
    observers see it fine. One vantage point must not change what is published."""
    assert cluster.wait_ready()[0] == "west"
    start = cluster.recorder.latest()
    assert start is not None

    cut = time.monotonic()
    firewall.cut(UIDS["west"], [EAST["east-a"]], [cluster.gateway_port], how="drop")
    # west's streak for east-a is DOWN after fall probes (each up to the 500 ms timeout)
    try:
        hold_steady(cluster, start, cut + FALL * INTERVAL + 1.0 + STEADY_WINDOW, "the leader cut off from east-a")
    except AssertionError as exc:  # say what the leader wrote, from the audit log
        applied = [(e["at"], e["observer"], e["kind"], e["detail"]) for e in cluster.history()
                   if e["kind"] in ("applying", "applied")]
        raise AssertionError(f"{exc}\naudit log, adapter entries: {applied}") from None
    assert [s.published for s in cluster.recorder.since(cut)] == [start]


# -- (c) ---------------------------------------------------------------------------------------------
def test_c_leader_killed_a_new_leader_within_the_lease_and_promote_works(cluster: Cluster, measured: Measured) -> None:
    old, token = cluster.wait_ready()

    killed = time.monotonic()
    cluster.kill(old)
    # Its last keepalive was sent at most loop_wait (plus one call) before the kill, and etcd
    # drops the lease ttl after it got it; the others campaign at once when their watch sees
    # the leader key go, at the latest at their next renewal (loop_wait).
    bound = TTL + LOOP_WAIT + 1.0
    elected, (new, new_token) = cluster.wait_leader(lambda lead: lead[0] != old, bound + 3, "a new leader")
    took = elected - killed
    measured("new leader after kill -9 of the leader", took, f"bound ttl + loop_wait + 1 s = {bound:g}s")
    assert took <= bound
    assert took >= TTL - LOOP_WAIT - 0.5, "a new leader while the dead leader's lease was still live"
    assert new_token > token

    # the new leader's first evaluation rewrites the marker under its own token
    cluster.recorder.wait(lambda p: p.marker is not None and (p.marker.by, p.marker.token) == (new, new_token),
                          killed, 5, "the marker rewritten by the new leader")
    assert cluster.published().addresses == EAST_ADDRS
    _, data = wait_status(cluster, lambda d: d["leader"] == new and not d["observers"][old]["alive"], 10,
                          "status names the new leader, the dead one not alive")
    assert all(data["observers"][n]["alive"] for n in OBSERVERS if n != old), data["observers"]

    # promote from the CLI on a host that does not lead: handed to the leader, verified
    other = next(n for n in OBSERVERS if n not in (old, new))
    began = time.monotonic()
    done = cluster.cli("promote", "west", "--reason", "INC-9 drill after the leader died", observer=other)
    measured("promote from a non-leader's host (CLI run)", time.monotonic() - began, "handed to the leader")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{cluster.logs()}"
    now = cluster.published()
    assert now.addresses == WEST_ADDRS and now.marker is not None, now
    assert (now.marker.primary, now.marker.by, now.marker.token) == ("west", new, new_token)


def test_c_leader_cut_off_from_etcd_stops_writing_and_a_new_leader_fails_over(
    cluster: Cluster, gateways: Gateways, firewall: Firewall, measured: Measured
) -> None:
    pool, _ = gateways
    old, token = cluster.wait_ready()
    start = cluster.recorder.latest()
    assert start is not None and start.marker is not None

    cut = time.monotonic()
    rule = firewall.cut(UIDS[old], ["127.0.0.1"], cluster.etcd_ports, how="drop")
    pool.stop("east-a", "east-b")  # a change for someone to make; the old leader sees it too
    killed = time.monotonic()

    bound = TTL + LOOP_WAIT + 1.0
    elected, (new, new_token) = cluster.wait_leader(lambda lead: lead[0] != old, bound + 3, "a new leader")
    measured("new leader after the leader was cut off from etcd", elected - cut,
             f"bound ttl + loop_wait + 1 s = {bound:g}s")
    assert elected - cut <= bound
    # not before the old lease ran out, which is after the old leader's own deadline (<= cut + 4 s)
    assert elected - cut >= TTL - LOOP_WAIT - 0.5, "a new leader while the old one's lease was still live"
    assert new_token > token

    flipped = cluster.recorder.wait(west_published, killed, 10, "west published by the new leader")
    measured("failover with the leader cut off (from east's death)", flipped - killed, f"bound {bound + 2:g}s")
    assert flipped - killed <= bound + 2  # the new leader's first evaluation: the quorum already saw east down
    history = cluster.recorder.since(cut)
    after = history[-1].published
    assert after.marker is not None and (after.marker.by, after.marker.token) == (new, new_token), after

    # The old leader stops at its local deadline: its last keepalive was sent before the cut, so
    # that deadline is at most cut + ttl - retry_timeout. Nothing it wrote may appear after it,
    # and epochs and tokens never go back.
    local_deadline = cut + TTL - RETRY_TIMEOUT
    late = [s for s in history[1:] if s.at > local_deadline and s.published.marker is not None
            and (s.published.marker.by == old or s.published.marker.token <= token)]
    assert not late, f"written by the old leader after its deadline: {late}\n{cluster.logs()}"
    markers = [s.published.marker for s in history if s.published.marker is not None]
    assert [m.epoch for m in markers] == sorted(m.epoch for m in markers), markers
    assert [m.token for m in markers] == sorted(m.token for m in markers), markers
    assert cluster.coordinators[old].running, f"{old} exited while cut off\n{cluster.logs()}"

    # back on the network: it rejoins as a member and does not take the leadership back
    firewall.restore(rule)
    _, data = wait_status(cluster, lambda d: all(o["alive"] for o in d["observers"].values()),
                          RETRY_TIMEOUT + LOOP_WAIT + 10, f"{old} alive again")
    assert data["leader"] == new
    hold_steady(cluster, after, time.monotonic() + 2 * LOOP_WAIT, f"{old} rejoined")
    assert cluster.leader() == (new, new_token)


# -- (d) ---------------------------------------------------------------------------------------------
def test_d_etcd_without_quorum_nothing_moves_and_the_failover_happens_when_it_returns(
    cluster: Cluster, gateways: Gateways, etcd_cluster: EtcdCluster, measured: Measured
) -> None:
    pool, _ = gateways
    cluster.wait_ready()
    start = cluster.recorder.latest()
    assert start is not None

    raft_leader = etcd_cluster.leader()
    paused = [raft_leader, next(m for m in etcd_cluster.members if m is not raft_leader)]
    try:
        for member in paused:
            member.pause()
        pool.stop("east-a", "east-b")
        killed = time.monotonic()

        status = cluster.status()
        assert status.returncode == 1, (status.returncode, status.data, status.stderr)
        # as docs/multi-region.md shows it: "error: etcd: ... failed on every endpoint within 2s: ..."
        assert "error: etcd:" in status.stderr and "failed on every endpoint" in status.stderr, status.stderr
        measured("failover status without etcd quorum (exit 1)", status.seconds, "CLI run, retry_timeout 2s")

        # longer than a failover takes and than the lease: the leader's deadline passes meanwhile
        window = max(STEADY_WINDOW, TTL + 2 * LOOP_WAIT)
        hold_steady(cluster, start, killed + window, "etcd without quorum")
    finally:
        for member in paused:
            member.resume()
    resumed = time.monotonic()

    # Each coordinator renews within loop_wait once etcd answers; the leader's token comes back
    # (or a new leader is elected) and each one's next evaluation (a change, at the latest the
    # 5 s reconcile) publishes its vote and decides.
    bound = TTL + 5.0 + 2.0
    flipped = cluster.recorder.wait(west_published, resumed, bound + 5, "west published once etcd is back")
    measured("failover after etcd got its quorum back", flipped - resumed,
             f"bound ttl + reconcile 5 s + 2 s = {bound:g}s")
    assert flipped - resumed <= bound
    assert all(c.running for c in cluster.coordinators.values()), cluster.logs()
    lead, now = cluster.leader(), cluster.published()
    assert lead is not None and now.marker is not None and now.marker.token == lead[1], (lead, now)
