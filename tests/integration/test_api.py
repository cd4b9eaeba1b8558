"""The admin API of a running daemon (in-process, real HTTP on loopback, real gateways, a zone
file as the DNS): token rules, body validation, operations applied before the answer, audit."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.zone
import httpx
import pytest
import yaml

from failover.api import api_token, openapi_json
from failover.errors import UsageError
from failover.localgw import LocalGateway, ThreadedGateways
from failover.policy import Api, Policy, parse_policy
from failover.store import open_store
from tests.conftest import EAST, WEST, failover_cmd, wait_for
from tests.support.bind import free_port
from tests.support.daemon import DaemonThread

DOMAIN = "api.example.com"
TOKEN_ENV = "TEST_FAILOVER_API_TOKEN"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def api_policy(tmp_path: Path, port: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": "payments-api",
        "observer": "east",
        "regions": [
            {"name": "east", "priority": 10, "gateways": [{"name": n, "address": a} for n, a in EAST.items()]},
            {"name": "west", "priority": 20, "gateways": [{"name": n, "address": a} for n, a in WEST.items()]},
        ],
        "domains": [
            {
                "name": DOMAIN,
                "checks": [{"kind": "http", "port": port, "path": "/ready", "interval": "200ms", "timeout": "150ms"}],
                "traffic": [{"kind": "zonefile", "path": str(tmp_path / "zone.db"), "zone": "example.com.", "ttl": 30}],
            }
        ],
        "health": {"rise": 1, "fall": 2},
        "election": {"failback": "manual", "hold_down": "0s", "max_failovers_per_hour": 50},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "api": {"listen": f"127.0.0.1:{free_port()}", "token_env": TOKEN_ENV, "token_name": "oncall"},
    }
    data.update(overrides)
    return data


def zone_addresses(path: Path) -> list[str]:
    if not path.exists():
        return []
    zone = dns.zone.from_file(str(path), "example.com.", relativize=False)
    node = zone.get_node(DOMAIN + ".")
    rdataset = node.get_rdataset(1, 1) if node else None  # IN A
    return sorted(r.to_text() for r in rdataset) if rdataset else []


class Running:
    def __init__(self, policy: Policy, tmp_path: Path) -> None:
        self.policy = policy
        self.zone = tmp_path / "zone.db"
        assert policy.api is not None
        self.base = f"http://{policy.api.listen}"
        self.thread = DaemonThread(policy).start()
        self.http = httpx.Client(base_url=self.base, timeout=10)

    def post(self, path: str, body: Any = None, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = body if isinstance(body, bytes | str) else json.dumps(body) if body is not None else b""
        return self.http.post(path, content=content, headers=headers, **kw)

    def history(self) -> list[Any]:
        store = open_store(self.policy.state.url)
        try:
            return store.history()
        finally:
            store.close()

    def close(self) -> None:
        self.http.close()
        self.thread.stop()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "tok-" + secrets.token_hex(16)
    monkeypatch.setenv(TOKEN_ENV, value)
    return value


@pytest.fixture
def running(tmp_path: Path, gateways: tuple[ThreadedGateways, int], token: str) -> Iterator[Running]:
    _pool, port = gateways
    daemon = Running(parse_policy(api_policy(tmp_path, port)), tmp_path)
    try:
        wait_for(lambda: daemon.http.get("/readyz").status_code == 200, 15, "ready")
        wait_for(lambda: zone_addresses(daemon.zone) == sorted(EAST.values()), 10, "east published")
        yield daemon
    finally:
        daemon.close()


def test_health_ready_status_and_the_openapi_document(running: Running) -> None:
    assert running.http.get("/healthz").json() == {"status": "ok"}
    assert running.http.get("/readyz").json()["ready"] is True
    status = running.http.get("/v1/status").json()
    assert status["service"] == "payments-api" and status["observer"] == "east"
    domain = status["domains"][DOMAIN]
    assert domain["primary"] == "east" and domain["secondary"] == "west" and domain["override"] is None
    assert domain["regions"]["east"]["healthy"] is True and domain["regions"]["east"]["drained"] is False
    assert set(domain["regions"]["west"]["gateways"]) == set(WEST)
    served = running.http.get("/openapi.json")
    assert served.headers["content-type"].startswith("application/json")
    assert served.text == (DOCS / "openapi.json").read_text() == openapi_json(), (
        "regenerate it: python -m failover.api > docs/openapi.json"
    )


def test_no_token_or_a_wrong_one_is_401_and_changes_nothing(running: Running, token: str) -> None:
    before = len(running.history())
    body = {"region": "west", "reason": "test"}
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": token},
    ):
        response = running.http.post("/v1/promote", json=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "token" in response.json()["error"]
    for path in ("/v1/release", "/v1/drain", "/v1/undrain"):
        assert running.post(path, {"region": "east"}, token="wrong").status_code == 401
    # even a bad body gets 401 first: without the token nobody learns anything
    assert running.post("/v1/promote", b"not json").status_code == 401
    assert len(running.history()) == before
    assert running.http.get("/v1/status").json()["domains"][DOMAIN]["override"] is None
    assert zone_addresses(running.zone) == sorted(EAST.values())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x"}, "region"),
        ({"region": "west"}, "reason"),
        ({"region": "west", "reason": "   "}, "reason"),
        ({"region": "west", "reason": "x", "force": "yes"}, "force"),
        ({"region": "west", "reason": "x", "for": "0s"}, "for"),
        ({"region": "west", "reason": "x", "for": "2 hours"}, "for"),
        ({"region": "west", "reason": "x", "regoin": "west"}, "regoin"),
        ({"region": "mars", "reason": "x"}, "region"),
        ({"region": "west", "reason": "x", "domain": "nope.example.com"}, "domain"),
        ({"region": 7, "reason": "x"}, "region"),
        (b"{not json", "body"),
        ([1, 2], "body"),
    ],
)
def test_a_bad_body_is_400_naming_the_field(running: Running, token: str, body: Any, field: str) -> None:
    before = len(running.history())
    response = running.post("/v1/promote", body, token=token)
    assert response.status_code == 400, response.text
    error = response.json()
    assert field in error["error"]
    assert field in [p["field"] for p in error["problems"]] or field in ("region", "domain")
    assert len(running.history()) == before  # rejected calls are not audited and change nothing


def test_runbook_through_the_api_applies_before_answering_and_audits_who_and_why(running: Running, token: str) -> None:
    promoted = running.post(
        "/v1/promote", {"region": "west", "reason": "INC-42 east is flaky", "by": "alice", "for": "1h"}, token=token
    )
    assert promoted.status_code == 200, promoted.text
    result = promoted.json()
    assert result["action"] == "promote" and result["verified"] is True
    assert result["by"] == "alice via oncall@127.0.0.1"
    outcome = result["outcomes"][0]
    assert outcome["primary"] == "west" and outcome["kind"] == "override" and outcome["changed"] is True
    assert outcome["adapters"][0]["action"] == "applied"
    assert zone_addresses(running.zone) == sorted(WEST.values())  # applied before the answer
    override = running.http.get("/v1/status").json()["domains"][DOMAIN]["override"]
    assert override["region"] == "west" and override["reason"] == "INC-42 east is flaky" and override["until"]

    calls = [e for e in running.history() if e.kind == "api"]
    assert calls[-1].data["by"] == "alice via oncall@127.0.0.1" and calls[-1].data["reason"] == "INC-42 east is flaky"
    assert calls[-1].data["token"] == "oncall" and calls[-1].data["peer"] == "127.0.0.1"

    released = running.post("/v1/release", {"reason": "INC-42 resolved"}, token=token)
    assert released.status_code == 200, released.text
    assert released.json()["released"]["region"] == "west"
    assert running.http.get("/v1/status").json()["domains"][DOMAIN]["override"] is None
    assert [e for e in running.history() if e.kind == "api"][-1].data["reason"] == "INC-42 resolved"

    # failback is manual: west stays; draining west moves traffic home at once
    drained = running.post("/v1/drain", {"region": "west", "reason": "patching"}, token=token)
    assert drained.status_code == 200, drained.text
    assert drained.json()["outcomes"][0]["primary"] == "east"
    assert zone_addresses(running.zone) == sorted(EAST.values())
    assert running.http.get("/v1/status").json()["domains"][DOMAIN]["regions"]["west"]["drained"] is True
    undrained = running.post("/v1/undrain", {"region": "west"}, token=token)
    assert undrained.status_code == 200, undrained.text
    assert running.http.get("/v1/status").json()["domains"][DOMAIN]["regions"]["west"]["drained"] is False
    kinds = [e.kind for e in running.history()]
    for kind in ("override", "release", "drain", "undrain"):
        assert kind in kinds


def test_promoting_an_unhealthy_region_is_refused_unless_forced(
    running: Running, token: str, gateways: tuple[ThreadedGateways, int]
) -> None:
    pool, _port = gateways
    pool.stop(*WEST)
    wait_for(
        lambda: running.http.get("/v1/status").json()["domains"][DOMAIN]["regions"]["west"]["healthy"] is False,
        10,
        "west down",
    )
    refused = running.post("/v1/promote", {"region": "west", "reason": "try"}, token=token)
    assert refused.status_code == 409 and "refusing to promote west" in refused.json()["error"]
    assert running.http.get("/v1/status").json()["domains"][DOMAIN]["override"] is None
    assert zone_addresses(running.zone) == sorted(EAST.values())
    forced = running.post("/v1/promote", {"region": "west", "reason": "drill", "force": True}, token=token)
    assert forced.status_code == 200, forced.text
    assert zone_addresses(running.zone) == sorted(WEST.values())  # forced: every gateway of the region


def test_operations_run_off_the_event_loop(tmp_path: Path, token: str) -> None:
    """A slow adapter (reload takes a second) does not stop the daemon from answering meanwhile."""
    port = free_port()
    pool = ThreadedGateways([LocalGateway(n, a, port) for n, a in {**EAST, **WEST}.items()])
    pool.start()
    flag = tmp_path / "slow"
    data = api_policy(tmp_path, port)
    script = f"import os, time; os.path.exists({str(flag)!r}) and time.sleep(1.5)"
    data["domains"][0]["traffic"][0]["reload_command"] = [sys.executable, "-c", script]
    daemon = Running(parse_policy(data), tmp_path)
    try:
        wait_for(lambda: zone_addresses(daemon.zone) == sorted(EAST.values()), 15, "east published")
        flag.touch()
        answer: dict[str, Any] = {}

        def promote() -> None:
            answer["response"] = daemon.post("/v1/promote", {"region": "west", "reason": "slow"}, token=token)
            answer["done"] = time.monotonic()

        caller = threading.Thread(target=promote)
        caller.start()
        wait_for(
            lambda: any(
                (e.kind == "applying" and "west" in e.detail) or e.kind == "override" for e in daemon.history()
            ),
            10,
            "promote under way",
        )
        started = time.monotonic()
        assert daemon.http.get("/healthz").status_code == 200
        assert daemon.http.get("/v1/status").status_code == 200
        answered = time.monotonic()
        caller.join(20)
        assert answer["response"].status_code == 200, answer["response"].text
        assert answered - started < 1.0 and answered < answer["done"], "the loop was blocked by the operation"
    finally:
        daemon.close()
        pool.close()


def test_the_token_rule_for_non_loopback_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert api_token(Api(listen="127.0.0.1:8877", token_env=TOKEN_ENV)) is None
    assert api_token(Api(listen="[::1]:8877", token_env=TOKEN_ENV)) is None
    for listen in ("0.0.0.0:8877", "192.0.2.1:8877", "[::]:8877", "gateway.internal:8877"):
        with pytest.raises(UsageError, match=TOKEN_ENV):
            api_token(Api(listen=listen, token_env=TOKEN_ENV))
    monkeypatch.setenv(TOKEN_ENV, "s3cret-token")
    assert api_token(Api(listen="0.0.0.0:8877", token_env=TOKEN_ENV)) == "s3cret-token"


def test_run_refuses_a_public_api_without_a_token_exit_2(tmp_path: Path) -> None:
    data = api_policy(tmp_path, free_port())
    data["api"]["listen"] = f"0.0.0.0:{free_port()}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    done = subprocess.run(
        [*failover_cmd(), "run", "--policy", str(policy)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "without a token" in done.stderr and TOKEN_ENV in done.stderr


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def metric(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def test_metrics_show_probes_health_primary_and_the_failover(running: Running, token: str) -> None:
    response = running.http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    wait_for(
        lambda: metric(running.http.get("/metrics").text, "failover_primary", domain=DOMAIN, region="east") == 1,
        5,
        "primary east in the metrics",
    )
    text = running.http.get("/metrics").text
    check = running.policy.domains[0].checks[0]
    label = f"http:{check.port}/ready"  # type: ignore[union-attr]
    probe = {"domain": DOMAIN, "region": "east", "gateway": "east-a", "check": label}
    assert (metric(text, "failover_probe_duration_seconds_count", **probe) or 0) >= 1
    assert (metric(text, "failover_probe_results_total", **probe, outcome="success") or 0) >= 1
    assert metric(text, "failover_gateway_up", domain=DOMAIN, region="west", gateway="west-b") == 1
    assert metric(text, "failover_region_up", domain=DOMAIN, region="east") == 1
    assert metric(text, "failover_region_gateways_up", domain=DOMAIN, region="east") == 2
    assert metric(text, "failover_ready") == 1
    assert metric(text, "failover_primary_changes_total", domain=DOMAIN, kind="elected") == 1
    # one publish, or two when east-b's rise completed after east-a's on a loaded machine
    published = metric(text, "failover_adapter_changes_total", domain=DOMAIN, adapter="zonefile zone.db")
    assert published in (1, 2)
    assert (metric(text, "failover_evaluations_total") or 0) >= 1
    assert metric(text, "failover_info", service="payments-api", observer="east", version=metric_version(text)) == 1
    assert "process_cpu_seconds_total" in text or "python_info" in text  # the default registry too

    assert running.post("/v1/promote", {"region": "west", "reason": "drill"}, token=token).status_code == 200
    wait_for(
        lambda: metric(running.http.get("/metrics").text, "failover_primary", domain=DOMAIN, region="west") == 1,
        5,
        "primary west in the metrics",
    )
    text = running.http.get("/metrics").text
    assert metric(text, "failover_primary", domain=DOMAIN, region="east") is None
    assert metric(text, "failover_secondary", domain=DOMAIN, region="east") == 1
    assert metric(text, "failover_primary_changes_total", domain=DOMAIN, kind="override") == 1
    assert published is not None
    assert metric(text, "failover_adapter_changes_total", domain=DOMAIN, adapter="zonefile zone.db") == published + 1
    assert (
        metric(text, "failover_adapter_apply_duration_seconds_count", domain=DOMAIN, adapter="zonefile zone.db") or 0
    ) == published + 1
    assert metric(text, "failover_override_active", scope="*", region="west") == 1
    assert metric(text, "failover_epoch", domain=DOMAIN) == 2
    assert metric(text, "failover_api_requests_total", method="POST", route="/v1/promote", status="200") == 1
    assert metric(text, "failover_audit_entries_total", kind="override") == 2  # the intent and the decision


def metric_version(text: str) -> str:
    for (name, labels), _value in samples(text).items():
        if name == "failover_info":
            return dict(labels)["version"]
    raise AssertionError("no failover_info")


def test_metrics_registries_are_per_daemon_and_count_store_errors(tmp_path: Path) -> None:
    from failover.errors import StoreError
    from failover.metrics import Metrics, instrument_store

    policy = parse_policy(api_policy(tmp_path, 9))
    first, second = Metrics(policy), Metrics(policy)  # no "duplicated timeseries"
    assert first.registry is not second.registry

    class Broken:
        url = "sqlite:///broken"

        def overrides(self) -> dict[str, Any]:
            raise StoreError("state store is busy")

    store = instrument_store(Broken(), first)  # type: ignore[arg-type]
    assert store.url == "sqlite:///broken"
    with pytest.raises(StoreError):
        store.overrides()
    assert first.registry.get_sample_value("failover_store_errors_total", {"operation": "overrides"}) == 1
    assert second.registry.get_sample_value("failover_store_errors_total", {"operation": "overrides"}) is None


def test_the_grafana_dashboard_uses_only_metrics_that_exist(tmp_path: Path) -> None:
    import re

    from prometheus_client import CollectorRegistry

    from failover.metrics import Metrics
    from failover.proxy import ProxyStats, UpstreamStats
    from failover.proxy._stats import ProxyCollector

    registry = CollectorRegistry()
    Metrics(parse_policy(api_policy(tmp_path, 9)), registry=registry)
    stats = ProxyStats(upstreams={"east/127.0.0.11": UpstreamStats("east", "127.0.0.11")})
    registry.register(ProxyCollector(lambda: stats, "127.0.0.1:8443"))
    exposed: set[str] = set()
    for family in registry.collect():
        exposed.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""], "info": ["_info"]}
        exposed.update(family.name + s for s in suffixes.get(family.type, [""]))
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    exprs.append(dashboard["templating"]["list"][1]["definition"])
    used = {name for expr in exprs for name in re.findall(r"\bfailover_[a-z_]+", expr)}
    assert used and used <= exposed, sorted(used - exposed)
    assert {"failover_primary", "failover_probe_duration_seconds_bucket", "failover_alerts_sent_total"} <= used
