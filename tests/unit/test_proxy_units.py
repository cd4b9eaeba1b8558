"""The proxy's pure parts: routes, addresses, PROXY headers, settings, stats, metrics."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from failover.model import DomainState, Status
from failover.policy import Policy, parse_policy
from failover.policy import Proxy as ProxyConfig
from failover.proxy import Proxy, ProxyStats, Route, Settings, UpstreamStats
from failover.proxy._proxyproto import V2_SIGNATURE, header, parse_v2
from failover.proxy._route import split_address
from failover.proxy._stats import ProxyCollector
from failover.proxy.follow import RouteFollower


def test_route_is_immutable_hashable_and_compares_by_value() -> None:
    a = Route((("us-east-1", ("192.0.2.10", "192.0.2.11")), ("eu-west-1", ("198.51.100.10",))))
    b = Route([["us-east-1", ["192.0.2.10", "192.0.2.11"]], ["eu-west-1", ["198.51.100.10"]]])  # type: ignore[arg-type]
    assert a == b and hash(a) == hash(b)
    assert a.tiers[0] == ("us-east-1", ("192.0.2.10", "192.0.2.11"))
    assert Route.from_json(a.to_json()) == a
    assert str(a) == "us-east-1 (192.0.2.10, 192.0.2.11) then eu-west-1 (198.51.100.10)"
    with pytest.raises(AttributeError):
        a.tiers = ()  # type: ignore[misc]


def test_empty_route() -> None:
    assert Route().empty
    assert Route((("r", ()),)).empty
    assert str(Route()) == "nowhere"
    assert not Route.single("r", "10.0.0.1").empty


@pytest.mark.parametrize("bad", ["gateway.example.com", "10.0.0.1:0", "10.0.0.1:99999", "[::1", "::1]:80"])
def test_route_refuses_bad_addresses(bad: str) -> None:
    with pytest.raises(ValueError, match=r"address|port"):
        Route.single("r", bad)


def test_route_refuses_malformed_json() -> None:
    with pytest.raises(ValueError, match="list of"):
        Route.from_json({"r": ["10.0.0.1"]})
    with pytest.raises(ValueError, match="list of"):
        Route.from_json([["r", "10.0.0.1"]])


def test_split_address() -> None:
    assert split_address("10.0.0.1", 443) == ("10.0.0.1", 443)
    assert split_address("10.0.0.1:8443", 443) == ("10.0.0.1", 8443)
    assert split_address("[2001:db8::1]:80", 443) == ("2001:db8::1", 80)
    assert split_address("2001:db8::1", 443) == ("2001:db8::1", 443)
    assert split_address("127.0.0.1:0", 1, allow_zero=True) == ("127.0.0.1", 0)


def test_proxy_v2_header_ipv4_round_trip() -> None:
    data = header("v2", ("192.0.2.7", 40000), ("198.51.100.1", 8443))
    assert data.startswith(V2_SIGNATURE)
    assert data[12] == 0x21 and data[13] == 0x11 and len(data) == 16 + 12
    assert parse_v2(data + b"GET /") == (("192.0.2.7", 40000), ("198.51.100.1", 8443), 28)


def test_proxy_v2_header_ipv6_and_mapped() -> None:
    data = header("v2", ("2001:db8::7", 1, 0, 0), ("2001:db8::1", 2, 0, 0))
    assert data[13] == 0x21
    assert parse_v2(data)[:2] == (("2001:db8::7", 1), ("2001:db8::1", 2))
    mapped = header("v2", ("::ffff:192.0.2.7", 5), ("::ffff:192.0.2.1", 6))
    assert parse_v2(mapped)[:2] == (("192.0.2.7", 5), ("192.0.2.1", 6))


def test_proxy_header_unknown_addresses() -> None:
    assert parse_v2(header("v2", None, ("10.0.0.1", 1))) == (None, None, 16)
    assert header("v1", "/tmp/sock", None) == b"PROXY UNKNOWN\r\n"
    assert header("v1", ("10.0.0.7", 1), ("10.0.0.1", 2)) == b"PROXY TCP4 10.0.0.7 10.0.0.1 1 2\r\n"
    assert header("v1", ("::1", 1, 0, 0), ("::1", 2, 0, 0)) == b"PROXY TCP6 ::1 ::1 1 2\r\n"


def test_parse_v2_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="signature"):
        parse_v2(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ValueError, match="truncated"):
        parse_v2(header("v2", ("10.0.0.7", 1), ("10.0.0.1", 2))[:20])


def test_settings_from_policy_block() -> None:
    config = ProxyConfig.model_validate({
        "listen": "127.0.0.1:9443", "upstream_port": 8443, "workers": 2, "max_connections": 100,
        "idle_timeout": "5m", "proxy_protocol": True, "balance": "least_connections",
        "ejection_time": "2s", "connect_timeout": "250ms", "drain_time": "0s",
    })
    s = Settings.from_policy(config)
    assert (s.host, s.port, s.upstream_port, s.workers, s.max_connections) == ("127.0.0.1", 9443, 8443, 2, 100)
    assert (s.idle_timeout, s.proxy_protocol, s.balance) == (300.0, "v2", "least_connections")
    assert (s.ejection_time, s.connect_timeout, s.drain_time) == (2.0, 0.25, 0.0)
    assert Settings.from_json(s.to_json()) == s


def test_policy_proxy_protocol_values() -> None:
    assert ProxyConfig.model_validate({"proxy_protocol": False}).proxy_protocol is None
    assert ProxyConfig.model_validate({"proxy_protocol": "v1"}).proxy_protocol == "v1"
    assert ProxyConfig().proxy_protocol is None
    with pytest.raises(ValueError, match="proxy_protocol"):
        ProxyConfig.model_validate({"proxy_protocol": "v3"})
    with pytest.raises(ValueError, match=r"unknown key 'worker'.*did you mean 'workers'"):
        ProxyConfig.model_validate({"worker": 2})


def _stats(active: int, conns: int) -> ProxyStats:
    return ProxyStats(
        connections_active=active, connections_total=conns, bytes_from_clients=10, bytes_to_clients=20,
        route_changes=3,
        upstreams={"r1/10.0.0.1": UpstreamStats("r1", "10.0.0.1", connections=conns, active=active)},
    )


def test_stats_add_and_json_round_trip() -> None:
    total = ProxyStats()
    total.add(_stats(1, 5))
    total.add(_stats(2, 7))
    assert (total.connections_active, total.connections_total, total.bytes_to_clients) == (3, 12, 40)
    assert total.route_changes == 3  # the same routes in every worker: not summed
    assert total.upstreams["r1/10.0.0.1"].connections == 12
    assert ProxyStats.from_json(total.to_json()) == total


def test_metrics_names_and_labels() -> None:
    registry = CollectorRegistry()
    registry.register(ProxyCollector(lambda: _stats(2, 9), "127.0.0.1:8443"))
    text = generate_latest(registry).decode()
    assert 'failover_proxy_connections_active{listen="127.0.0.1:8443"} 2.0' in text
    assert 'failover_proxy_connections_total{listen="127.0.0.1:8443"} 9.0' in text
    assert 'failover_proxy_bytes_total{direction="upstream_to_client",listen="127.0.0.1:8443"} 20.0' in text
    assert (
        'failover_proxy_upstream_connections_total{listen="127.0.0.1:8443",region="r1",upstream="10.0.0.1"} 9.0'
        in text
    )
    assert 'failover_proxy_region_connections_total{listen="127.0.0.1:8443",region="r1"} 9.0' in text
    for name in ("upstream_connect_failures_total", "upstream_retries_total", "upstream_ejected",
                 "connections_rejected_total", "connections_closed_total"):
        assert f"failover_proxy_{name}" in text


def _two_region_policy() -> Policy:
    return parse_policy({
        "service": "api", "observer": "east",
        "regions": [
            {"name": "east", "gateways": [{"name": "e1", "address": "192.0.2.10"},
                                          {"name": "e2", "address": "192.0.2.11"}]},
            {"name": "west", "gateways": [{"name": "w1", "address": "2001:db8::10"}]},
        ],
        "domains": [{"name": "api.example.com", "checks": [{"kind": "tcp", "port": 443}]}],
    })


def test_route_for_regions_follows_the_decision_and_health() -> None:
    policy = _two_region_policy()
    up = {"e1": False, "e2": True, "w1": True}
    route = Route.for_regions(policy, ("east", "west"), lambda gw: up[gw])
    assert route.tiers == (("east", ("192.0.2.11",)), ("west", ("2001:db8::10",)))
    assert Route.for_regions(policy, ("west", None, "nowhere", "west"), lambda gw: True).tiers == (
        ("west", ("2001:db8::10",)),
    )
    assert Route.for_regions(policy, (None, None), lambda gw: True).empty


def test_route_follower_routes_by_the_latest_decision_and_skips_gateways_down() -> None:
    decisions: dict[str, DomainState] = {}
    statuses: dict[str, Status] = {"e1": Status.DOWN, "e2": Status.UP}  # w1: no verdict yet
    asked: list[str] = []

    def decided(domain: str) -> DomainState | None:
        asked.append(domain)
        return decisions.get(domain)

    proxy = Proxy(Settings.from_listen("127.0.0.1:0", 8443), registry=None)
    follow = RouteFollower(proxy, _two_region_policy(), "api.example.com", decided, lambda domain: statuses)

    follow()  # no decision yet: nowhere to go
    assert proxy.route.empty and asked == ["api.example.com"]

    decisions["api.example.com"] = DomainState("api.example.com", primary="east", secondary="west")
    follow()
    assert proxy.route == Route((("east", ("192.0.2.11",)), ("west", ("2001:db8::10",))))

    statuses["e1"] = Status.UP  # a verdict change is followed on the next call
    decisions["api.example.com"] = DomainState("api.example.com", primary="west", secondary="east")
    follow(object())
    assert proxy.route == Route((("west", ("2001:db8::10",)), ("east", ("192.0.2.10", "192.0.2.11"))))

    decisions["api.example.com"] = DomainState("api.example.com", primary=None)
    follow()
    assert proxy.route.empty
