"""RFC 2136 specifics against BIND (refusals, fencing) and the zone-file adapter."""

from __future__ import annotations

import threading
import time

import dns.zone
import pytest
import yaml

from failover.adapters import build_adapter
from failover.adapters.abc import Desired
from failover.adapters.rfc2136 import Rfc2136Adapter
from failover.adapters.zonefile import ZonefileAdapter
from failover.errors import AdapterError, LostRace, UsageError
from failover.policy import load_policy

DOMAIN = "refused.example.com"


def desired(primary: str, epoch: int, *addresses: str) -> Desired:
    return Desired(DOMAIN, primary, epoch, tuple(sorted(addresses)), 30, "east", int(time.time()))


def test_unsigned_update_is_refused_and_named(bind):
    unsigned = Rfc2136Adapter(DOMAIN, bind.host, bind.port, bind.zone)
    plan = unsigned.plan(unsigned.read(), desired("east", 1, "127.0.0.11"))
    with pytest.raises(AdapterError, match="REFUSED"):
        unsigned.apply(plan)
    assert bind.query(DOMAIN) == []


def test_marker_with_a_newer_epoch_is_never_overwritten(bind):
    key = (bind.key_name, bind.algorithm, bind.key_secret)
    ours = Rfc2136Adapter(DOMAIN, bind.host, bind.port, bind.zone, 30, key)
    ours.apply(ours.plan(ours.read(), desired("west", 5, "127.0.0.21")))
    with pytest.raises(LostRace, match="newer than our epoch 4"):
        ours.plan(ours.read(), desired("east", 4, "127.0.0.11"))
    assert bind.query(DOMAIN) == ["127.0.0.21"]


def test_bad_tsig_secret_and_zone_mismatch_are_usage_errors(bind):
    with pytest.raises(UsageError, match="not valid base64"):
        Rfc2136Adapter(DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, "hmac-sha256", "%%%"))
    with pytest.raises(UsageError, match="not inside zone"):
        Rfc2136Adapter("api.other.org", bind.host, bind.port, bind.zone)


def test_zonefile_publishes_atomically_bumps_serial_and_fences(tmp_path):
    path = tmp_path / "example.com.zone"
    adapter = ZonefileAdapter("api.example.com", path, "example.com.", 30)
    first = Desired("api.example.com", "east", 1, ("127.0.0.11", "::1"), 30, "east", 100)
    plan = adapter.plan(adapter.read(), first)
    adapter.apply(plan)
    adapter.verify(first)
    zone = dns.zone.from_file(str(path), origin="example.com.")
    serial = next(iter(zone.find_rdataset("@", "SOA"))).serial
    assert adapter.read().addresses == ("127.0.0.11", "::1")
    assert adapter.plan(adapter.read(), first).noop

    second = Desired("api.example.com", "west", 2, ("127.0.0.21",), 30, "east", 200)
    stale = adapter.plan(adapter.read(), second)
    # someone else rewrites the marker between our read and our apply
    adapter.apply(adapter.plan(adapter.read(), Desired("api.example.com", "west", 2, ("127.0.0.22",), 30, "west", 150)))
    with pytest.raises(LostRace):
        adapter.apply(stale)
    assert adapter.read().addresses == ("127.0.0.22",)
    zone = dns.zone.from_file(str(path), origin="example.com.")
    assert next(iter(zone.find_rdataset("@", "SOA"))).serial == serial + 1
    assert not list(tmp_path.glob(".zone-*"))  # no temporary file left behind


def test_zonefile_concurrent_writers_one_wins(tmp_path):
    path = tmp_path / "z.zone"
    adapters = [ZonefileAdapter("api.example.com", path, "example.com.") for _ in range(6)]
    live = adapters[0].read()
    results: list[str] = []

    def go(i: int) -> None:
        plan = adapters[i].plan(live, Desired("api.example.com", f"r{i}", 1, (f"127.0.0.{i + 1}",), 30, "x", 1))
        try:
            adapters[i].apply(plan)
            results.append("won")
        except LostRace:
            results.append("lost")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(results) == ["lost"] * 5 + ["won"]


def test_zonefile_reload_command_failure_is_reported(tmp_path):
    adapter = ZonefileAdapter("api.example.com", tmp_path / "z.zone", "example.com.", 30, ["false"])
    with pytest.raises(AdapterError, match="reload command exited 1"):
        adapter.apply(adapter.plan(adapter.read(), Desired("api.example.com", "east", 1, ("127.0.0.1",), 30, "e", 1)))


def test_losing_a_race_to_the_same_decision_counts_as_in_sync(tmp_path):
    """An operator's promote and the daemon apply the same stored decision at once: the loser
    re-reads, finds its own wish live, and reports success instead of an error."""
    from failover.coordinator import Coordinator
    from failover.model import DomainState
    from failover.policy import parse_policy
    from failover.store.sqlite import SqliteStore

    policy = parse_policy({
        "service": "s", "observer": "east",
        "regions": [{"name": "east", "gateways": [{"name": "e1", "address": "127.0.0.11"}]}],
        "domains": [{"name": "api.example.com", "checks": [{"kind": "tcp", "port": 1}]}],
    })
    zone = ZonefileAdapter("api.example.com", tmp_path / "z.zone", "example.com.")
    coordinator = Coordinator(policy, SqliteStore(tmp_path / "s.db"), {"api.example.com": [zone]})
    state = DomainState("api.example.com", "east", None, 1)
    stale = zone.read()
    twin = ZonefileAdapter("api.example.com", tmp_path / "z.zone", "example.com.")
    twin.apply(twin.plan(twin.read(), Desired("api.example.com", "east", 1, ("127.0.0.11",), 30, "daemon", 1)))

    outcome = coordinator.reconciler.reconcile(zone, stale, state, ("127.0.0.11",), {}, apply=True)
    assert outcome.action == "noop" and "applied the same decision first" in outcome.detail
    assert [e.kind for e in coordinator.store.history()] == ["applying", "lost_race"]

    other = DomainState("api.example.com", "east", None, 1)
    stale = zone.read()
    twin.apply(twin.plan(twin.read(), Desired("api.example.com", "west", 2, ("127.0.0.21",), 30, "daemon", 2)))
    lost = coordinator.reconciler.reconcile(zone, stale, other, ("127.0.0.13",), {}, apply=True)
    assert lost.action == "lost_race"  # the other writer decided later: reported, not overwritten
    assert zone.read().addresses == ("127.0.0.21",)


def test_built_from_the_policy_with_paths_relative_to_its_file(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "policy.yaml").write_text(yaml.safe_dump({
        "service": "s", "observer": "east",
        "regions": [{"name": "east", "gateways": [{"name": "e1", "address": "127.0.0.11"}]}],
        "domains": [{"name": "api.example.com", "checks": [{"kind": "tcp", "port": 1}], "traffic": [
            {"kind": "zonefile", "path": "zones/api.zone", "zone": "example.com.", "ttl": 45},
            {"kind": "rfc2136", "server": "127.0.0.1:5353", "zone": "example.com.", "ttl": 20},
        ]}],
    }))
    monkeypatch.chdir(tmp_path)  # relative to the policy file, not to where the command runs
    policy = load_policy(folder / "policy.yaml")
    zone_block, rfc_block = policy.domains[0].traffic
    zone = build_adapter(zone_block, "api.example.com", policy)
    assert isinstance(zone, ZonefileAdapter) and zone.ttl == 45
    assert zone.path == folder.resolve() / "zones" / "api.zone"
    rfc = build_adapter(rfc_block, "api.example.com", policy)
    assert isinstance(rfc, Rfc2136Adapter) and (rfc.server, rfc.port, rfc.ttl) == ("127.0.0.1", 5353, 20)
    with pytest.raises(TypeError, match="expected a ZonefileTraffic block, got a rfc2136 block"):
        ZonefileAdapter.from_policy(rfc_block, "api.example.com", policy)
