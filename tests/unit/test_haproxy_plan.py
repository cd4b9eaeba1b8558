"""The follow rule both proxy kinds share, the `proxy: {kind: haproxy}` policy fields, and reading
HAProxy's `show servers state` (pure: no process, no socket)."""

from __future__ import annotations

from typing import Any

import pytest

from failover.errors import PolicyError
from failover.model import DomainState, Status
from failover.policy import Policy
from failover.policy._load import parse_policy
from failover.proxy import Route
from failover.proxy.follow import plan_traffic
from failover.proxy.haproxy_api import RuntimeApiError, parse_servers_state

POLICY = {
    "service": "api",
    "observer": "east",
    "regions": [
        {
            "name": "east",
            "gateways": [{"name": "e1", "address": "192.0.2.10"}, {"name": "e2", "address": "192.0.2.11"}],
        },
        {"name": "west", "gateways": [{"name": "w1", "address": "2001:db8::10"}]},
        {"name": "south", "gateways": [{"name": "s1", "address": "192.0.2.30"}]},
    ],
    "domains": [{"name": "api.example.com", "checks": [{"kind": "tcp", "port": 443}]}],
}


def policy(**proxy: object) -> Policy:
    return parse_policy({**POLICY, **({"proxy": proxy} if proxy else {})})


def state(primary: str | None, secondary: str | None = None) -> DomainState:
    return DomainState("api.example.com", primary=primary, secondary=secondary)


def test_the_plan_puts_the_primarys_usable_gateways_first_then_the_secondarys() -> None:
    statuses = {"e1": Status.DOWN, "e2": Status.UP}  # w1, s1: no verdict yet, so usable
    plan = plan_traffic(policy(), state("east", "west"), statuses)
    assert plan is not None
    assert plan.route == Route((("east", ("192.0.2.11",)), ("west", ("2001:db8::10",))))
    assert [plan.role(g) for g in ("e1", "e2", "w1", "s1")] == ["down", "active", "standby", "idle"]
    assert plan.primary == "east" and not plan.fail_static


def test_with_the_primary_all_down_the_secondary_is_active_and_with_everything_down_it_fails_static() -> None:
    down = {"e1": Status.DOWN, "e2": Status.DOWN}
    plan = plan_traffic(policy(), state("east", "west"), down)
    assert plan is not None and plan.role("w1") == "active" and not plan.fail_static
    plan = plan_traffic(policy(), state("east", "west"), {**down, "w1": Status.DOWN})
    assert plan is not None and plan.fail_static and plan.route.empty and plan.primary == "east"
    assert {plan.role(g) for g in ("e1", "e2", "w1")} == {"down"}


def test_no_decision_no_plan_and_the_embedded_route_is_unchanged() -> None:
    assert plan_traffic(policy(), None, {}) is None
    assert plan_traffic(policy(), state(None), {}) is None
    up = {"e1": Status.UP, "e2": Status.DOWN, "w1": Status.UP}
    for primary, secondary in (("east", "west"), ("west", "east"), ("west", None), ("east", "nowhere")):
        plan = plan_traffic(policy(), state(primary, secondary), up)
        assert plan is not None
        assert plan.route == Route.for_regions(policy(), (primary, secondary), lambda g: up[g] is not Status.DOWN)


def test_the_haproxy_kind_needs_its_socket_and_backend_and_refuses_embedded_settings() -> None:
    ok = policy(kind="haproxy", runtime_api="unix:/run/haproxy.sock", backend="gateways", upstream_port=8443)
    assert ok.proxy is not None and ok.proxy.kind == "haproxy" and ok.proxy.backend == "gateways"
    assert policy(kind="haproxy", runtime_api="tcp:127.0.0.1:9999", backend="be").proxy is not None
    assert policy(listen="127.0.0.1:8443").proxy.kind == "embedded"  # type: ignore[union-attr]
    cases: dict[str, dict[str, Any]] = {
        "needs runtime_api and backend": {"kind": "haproxy"},
        "needs backend": {"kind": "haproxy", "runtime_api": "unix:/x"},
        "is not a Runtime API address": {"kind": "haproxy", "runtime_api": "/run/haproxy.sock", "backend": "b"},
        "use unix:/absolute/path or tcp:host:port": {"kind": "haproxy", "runtime_api": "tcp:host", "backend": "b"},
        "not an HAProxy backend name": {"kind": "haproxy", "runtime_api": "unix:/x", "backend": "my backend"},
        "listen, workers: only for kind embedded": {
            "kind": "haproxy", "runtime_api": "unix:/x", "backend": "b", "listen": "0.0.0.0:1", "workers": 2,
        },
        "runtime_api: only for kind haproxy": {"runtime_api": "unix:/x"},
        "backend: only for kind haproxy": {"kind": "embedded", "backend": "b"},
    }  # fmt: skip
    for message, block in cases.items():
        with pytest.raises(PolicyError, match="proxy") as error:
            policy(**block)
        assert message in str(error.value), (block, str(error.value))


STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 gateways 1 east-a 127.0.0.12 2 8 50 1 0 1 0 2 0 0 0 0 - 9998 - 0 0 - - 0
3 gateways 2 west-a 127.0.0.21 0 1 1 1 0 1 0 0 0 0 0 0 - 9999 - 0 0 - - 0
3 gateways 3 slot1 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
3 gateways 4 slot2 127.0.0.1 0 5 1 1 0 1 0 0 8 0 0 0 - 1 - 0 0 - - 0

"""  # noqa: E501  (HAProxy 2.6's answer, as it is)


def test_show_servers_state_is_read_by_column_name() -> None:
    servers = parse_servers_state("gateways", STATE)
    assert list(servers) == ["east-a", "west-a", "slot1", "slot2"]
    east = servers["east-a"]
    assert (east.address, east.port, east.weight, east.initial_weight) == ("127.0.0.12", 9998, 50, 1)
    assert east.admin == "drain"
    assert servers["west-a"].admin == "maint"
    assert servers["slot1"].admin == "ready"  # 'disabled' in the configuration (0x04), then set ready
    assert servers["slot2"].admin == "maint"  # still disabled: forced maintenance too (0x05)


def test_a_missing_backend_or_an_unknown_answer_is_an_error_naming_it() -> None:
    with pytest.raises(RuntimeApiError, match="HAProxy has no backend 'nope'"):
        parse_servers_state("nope", "Can't find backend.\n\n")
    with pytest.raises(RuntimeApiError, match="unexpected answer: Permission denied"):
        parse_servers_state("gateways", "Permission denied\n\n")
    assert parse_servers_state("empty", STATE.split("\n3 ")[0] + "\n") == {}
