"""A whole runbook through the admin API of `failover run` (a real subprocess) against BIND, with
real local Slack and webhook receivers:

* a bad token changes nothing (DNS, state, audit log, alerts);
* promote with the good token moves DNS before it answers, and posts ONE Slack message naming
  the region and the reason; the webhook gets the same event, signed;
* /metrics shows the failover;
* a Slack that answers 429, hangs, or is down does not delay the DNS change;
* no payload any receiver got holds a secret (TSIG key, API token, webhook URLs, signing key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import signal
import subprocess
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from failover.adapters.rfc2136 import Rfc2136Adapter
from tests.conftest import EAST, WEST, failover_cmd, policy_dict, wait_for
from tests.support.bind import free_port
from tests.support.receiver import Answer, Receiver

DOMAIN = "api.example.com"
EAST_ADDRS = sorted(EAST.values())
WEST_ADDRS = sorted(WEST.values())


def metrics(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(base + "/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(base: str, name: str, **labels: str) -> float:
    return metrics(base).get((name, frozenset(labels.items())), 0.0)


def test_runbook_through_the_api_against_bind(bind, gateways, write_policy, cli_env, tmp_path) -> None:
    _pool, port = gateways
    Rfc2136Adapter(
        DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, bind.algorithm, bind.key_secret)
    ).raw_update(lambda u: (u.delete(DOMAIN + ".", "A"), u.delete("_failover." + DOMAIN + ".", "TXT")))
    slack = Receiver().start()
    hook = Receiver().start()
    token = "tok-" + secrets.token_hex(16)
    signing = "whsec-" + secrets.token_hex(16)
    env = {
        **cli_env,
        "FAILOVER_API_TOKEN": token,
        "SLACK_WEBHOOK_URL": slack.url,
        "RUNBOOK_HOOK_URL": hook.url,
        "RUNBOOK_HOOK_KEY": signing,
    }
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    policy = write_policy(
        policy_dict(
            bind,
            port,
            api={"listen": listen, "token_env": "FAILOVER_API_TOKEN", "token_name": "oncall"},
            alerts=[
                {
                    "kind": "slack",
                    "webhook_env": "SLACK_WEBHOOK_URL",
                    "link": "https://grafana.example/d/failover",
                    "timeout": "1s",
                    "retries": 2,
                },
                {"kind": "webhook", "url_env": "RUNBOOK_HOOK_URL", "secret_env": "RUNBOOK_HOOK_KEY"},
            ],
        )
    )
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [*failover_cmd(), "run", "--policy", str(policy)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    http = httpx.Client(base_url=base, timeout=15)
    good = {"Authorization": f"Bearer {token}"}

    def up() -> bool:
        try:
            return http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 30, "the daemon is ready")
        wait_for(lambda: bind.query(DOMAIN) == EAST_ADDRS, 15, "east published")
        slack.wait_count(1)  # "east is primary"
        before_slack = len(slack.received)
        overrides_before = http.get("/v1/status").json()["domains"][DOMAIN]["override"]
        assert overrides_before is None

        # 1. a bad token changes nothing
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {token[:-1]}"}):
            refused = http.post("/v1/promote", json={"region": "west", "reason": "nope"}, headers=headers)
            assert refused.status_code == 401, refused.text
        assert bind.query(DOMAIN) == EAST_ADDRS
        status = http.get("/v1/status").json()["domains"][DOMAIN]
        assert status["primary"] == "east" and status["override"] is None
        assert len(slack.received) == before_slack

        # 2. promote with the good token: DNS moves before the answer; one Slack message
        evaluations = sample(base, "failover_evaluations_total")
        promoted = http.post(
            "/v1/promote", json={"region": "west", "reason": "INC-1234 east packet loss", "by": "alice"}, headers=good
        )
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["verified"] is True
        assert bind.query(DOMAIN) == WEST_ADDRS
        assert bind.query("_failover." + DOMAIN, "TXT")[0].startswith("epoch=2 primary=west")
        slack.wait_count(before_slack + 1)
        # let one more evaluation run: anything it would add to Slack is queued by then
        wait_for(lambda: sample(base, "failover_evaluations_total") > evaluations, 15, "an evaluation after promote")
        wait_for(lambda: sample(base, "failover_alert_queue_length", sink="slack") == 0, 10, "slack queue drained")
        assert len(slack.received) == before_slack + 1, [r.json()["text"] for r in slack.received]
        message = slack.received[-1].json()
        text = json.dumps(message)
        assert "west" in message["blocks"][0]["text"]["text"] and "INC-1234 east packet loss" in text
        assert "alice via oncall@127.0.0.1" in text and "https://grafana.example/d/failover" in text
        fields = [f["text"] for f in message["blocks"][1]["fields"]]
        assert "*From → to*\neast → *west*" in fields

        # the webhook got the same event, signed
        wait_for(lambda: any(r.json()["event"] == "override_set" for r in hook.received), 10, "webhook event")
        for got in hook.received:
            expected = "sha256=" + hmac.new(signing.encode(), got.body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(got.headers["x-failover-signature"], expected)

        # 3. /metrics shows the failover
        assert sample(base, "failover_primary", domain=DOMAIN, region="west") == 1
        assert sample(base, "failover_primary_changes_total", domain=DOMAIN, kind="override") == 1
        assert sample(base, "failover_alerts_sent_total", sink="slack", event="override_set") == 1
        assert sample(base, "failover_api_requests_total", method="POST", route="/v1/promote", status="401") == 3

        # 4. Slack rate-limits (429, Retry-After 30), hangs, or is down: DNS moves at once anyway
        timings: list[float] = []

        def timed(path: str, body: dict[str, Any]) -> httpx.Response:
            began = time.monotonic()
            response = http.post(path, json=body, headers=good)
            timings.append(time.monotonic() - began)
            assert response.status_code == 200, response.text
            return response

        slack.default = Answer(429, "rate_limited", retry_after="30")
        seen = len(slack.received)
        timed("/v1/promote", {"region": "east", "reason": "INC-1234 back home"})
        assert bind.query(DOMAIN) == EAST_ADDRS
        slack.wait_count(seen + 1)  # it was tried, and refused

        slack.default = Answer(hang=True)
        timed("/v1/promote", {"region": "west", "reason": "INC-1235 east kernel patch", "for": "10m"})
        assert bind.query(DOMAIN) == WEST_ADDRS

        slack.close()  # down: connection refused from now on
        timed("/v1/release", {"reason": "INC-1235 patched"})
        timed("/v1/drain", {"region": "west", "reason": "INC-1236 west maintenance"})
        assert bind.query(DOMAIN) == EAST_ADDRS
        timed("/v1/undrain", {"region": "west"})
        assert max(timings) < 3.0, f"operations took {timings}s while Slack misbehaved"
        assert http.get("/healthz").status_code == 200

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        http.close()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        log.close()
        slack.close()
        hook.close()

    # 5. no secret in any payload any receiver got
    payloads = slack.raw() + hook.raw()
    assert len(payloads) >= 5
    for secret in (bind.key_secret, token, signing, slack.url, hook.url):
        for body in payloads:
            assert secret.encode() not in body, f"a payload holds a secret: {body[:200]!r}"
    text = (tmp_path / "daemon.log").read_text()
    assert "west pinned by alice via oncall@127.0.0.1" in text  # the decision sentence, logged
    assert token not in text and bind.key_secret not in text
