"""``failover.explain`` in one process on a real sqlite store, for the cases the end-to-end
tests do not reach: a primary no longer in the policy, and fail static because the only other
region is drained. Probe results are recorded by hand (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover.coordinator import Coordinator
from failover.explain import explain
from failover.model import DomainState, Drain, ProbeResult, StreakKey
from failover.policy import parse_policy
from failover.store.sqlite import SqliteStore

DOMAIN = "api.example.com"
NOW = 1_800_000_000.0


def setup(tmp_path: Path, regions: list[str], up: dict[str, bool]) -> tuple[Coordinator, list[StreakKey]]:
    policy = parse_policy(
        {
            "service": "s",
            "observer": "east",
            "regions": [
                {"name": name, "priority": i, "gateways": [{"name": f"{name}-1", "address": f"127.0.0.{11 + i}"}]}
                for i, name in enumerate(regions)
            ],
            "domains": [{"name": DOMAIN, "checks": [{"kind": "tcp", "port": 80}]}],
            "health": {"rise": 1, "fall": 1},
            "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        }
    )
    store = SqliteStore(tmp_path / "state.db")
    keys = [StreakKey(DOMAIN, f"{name}-1", "tcp:80") for name in regions]
    coordinator = Coordinator(policy, store, {}, clock=lambda: NOW, targets=keys)
    coordinator.record(
        {k: ProbeResult(up[k.gateway[:-2]], 0.001, "open" if up[k.gateway[:-2]] else "refused") for k in keys}
    )
    return coordinator, keys


def domain(coordinator: Coordinator, keys: list[StreakKey]) -> Any:
    return explain(coordinator, keys)["domains"][DOMAIN]


def test_a_primary_removed_from_the_policy_is_moved_at_the_next_evaluation(tmp_path: Path) -> None:
    coordinator, keys = setup(tmp_path, ["east", "west"], {"east": True, "west": True})
    coordinator.store.put_state(DomainState(DOMAIN, primary="central", epoch=4), None)
    info = domain(coordinator, keys)
    assert (info["primary"], info["rule"], info["decision"]["kind"]) == ("central", "move", "failover")
    assert (
        info["explanation"] == "a move is due at the next evaluation: central is no longer in the policy; east elected"
    )
    assert set(info["regions"]) == {"east", "west"}
    coordinator.store.close()


def test_fail_static_names_the_drained_region_that_could_have_taken_over(tmp_path: Path) -> None:
    coordinator, keys = setup(tmp_path, ["east", "west"], {"east": False, "west": True})
    coordinator.store.put_state(DomainState(DOMAIN, primary="east", epoch=1), None)
    coordinator.store.set_drain(Drain("west", "db migration", "carol", NOW - 60))
    info = domain(coordinator, keys)
    assert (info["rule"], info["regions"]["west"]["drained"]["by"]) == ("fail_static", "carol")
    assert info["explanation"] == (
        "east down (1/1 gateways failing), and no other region can take over: "
        "west drained by carol (db migration): east stays (fail static)"
    )
    gateway = info["regions"]["east"]["gateways"]["east-1"]
    assert gateway["checks"] == [
        {
            "check": "tcp:80",
            "status": "down",
            "last": "refused",
            "latency_ms": 1.0,
            "successes": 0,
            "failures": 1,
            "since": "2027-01-15T08:00:00Z",
        }
    ]
    coordinator.store.close()


def test_one_region_alone_down_is_every_region_down(tmp_path: Path) -> None:
    coordinator, keys = setup(tmp_path, ["east"], {"east": False})
    coordinator.store.put_state(DomainState(DOMAIN, primary="east", epoch=1), None)
    info = domain(coordinator, keys)
    assert info["explanation"] == "east down (1/1 gateways failing), and every region is down: east stays (fail static)"
    coordinator.store.close()
