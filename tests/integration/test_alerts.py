"""Alert delivery against real local HTTP receivers that answer 200, 429, 5xx, 4xx, hang, or are
down: Block Kit and signed JSON payloads, retries and Retry-After, bounded queues, de-duplication,
no secret in any payload, and ``publish`` never waiting on any of it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from failover.alerts import Dispatcher, Event, Route, SlackSink, WebhookSink, build_dispatcher, policy_secrets
from failover.errors import UsageError
from failover.metrics import Metrics
from failover.policy import Policy, parse_policy
from tests.support.bind import free_port
from tests.support.receiver import Answer, Receiver

EAST_WEST = [
    {"name": "east", "priority": 10, "gateways": [{"name": "east-a", "address": "127.0.0.11"}]},
    {"name": "west", "priority": 20, "gateways": [{"name": "west-a", "address": "127.0.0.21"}]},
]


def small_policy(**extra: Any) -> Policy:
    return parse_policy(
        {
            "service": "payments-api",
            "observer": "east",
            "regions": EAST_WEST,
            "domains": [{"name": "api.example.com", "checks": [{"kind": "tcp", "port": 9}]}],
            **extra,
        }
    )


def event(kind: Any = "failover", key: str = "", **fields: Any) -> Event:
    defaults: dict[str, Any] = {
        "domain": "api.example.com",
        "from_region": "east",
        "to_region": "west",
        "reason": "east down [2/2 gateways failing]; west elected",
        "severity": "critical",
    }
    defaults.update(fields)
    return Event(kind, "api.example.com east → west", "payments-api", "east", time.time(), key=key, **defaults)


async def until(condition: Callable[[], bool], deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what}: not true within {deadline}s")


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return found or 0.0


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        made.append(Receiver(**kw).start())
        return made[-1]

    yield make
    for receiver in made:
        await asyncio.to_thread(receiver.close)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(small_policy())


async def started(*routes: Route, metrics: Metrics | None = None, **kw: Any) -> Dispatcher:
    dispatcher = Dispatcher(routes, metrics, backoff_initial=kw.pop("backoff_initial", 0.05), **kw)
    await dispatcher.start()
    return dispatcher


async def test_slack_gets_a_block_kit_message(receivers: Callable[..., Receiver], metrics: Metrics) -> None:
    slack = receivers()
    sink = SlackSink("slack", slack.url, link="https://grafana.example/d/failover?var-domain={domain}")
    dispatcher = await started(Route(sink), metrics=metrics)
    dispatcher.publish(event(by="alice via oncall@127.0.0.1", details=("api.example.com: rfc2136 applied",)))
    await until(lambda: len(slack.received) == 1, 5, "slack message")
    await dispatcher.stop()
    message = slack.received[0]
    assert message.headers["content-type"].startswith("application/json")
    body = message.json()
    assert body["text"].startswith(":rotating_light: Failover: api.example.com east → west")
    header, section, details, context = body["blocks"]
    assert header["type"] == "header" and header["text"]["text"] == "Failover: api.example.com east → west"
    fields = [f["text"] for f in section["fields"]]
    assert "*Domain*\napi.example.com" in fields
    assert "*From → to*\neast → *west*" in fields
    assert "*Reason*\neast down [2/2 gateways failing]; west elected" in fields
    assert "*By*\nalice via oncall@127.0.0.1" in fields
    assert "*Link*\n<https://grafana.example/d/failover?var-domain=api.example.com|open>" in fields
    assert "rfc2136 applied" in details["text"]["text"]
    assert "payments-api" in context["elements"][0]["text"]
    assert value(metrics, "failover_alerts_sent_total", sink="slack", event="failover") == 1


async def test_slack_text_is_escaped_and_within_limits(receivers: Callable[..., Receiver]) -> None:
    slack = receivers()
    dispatcher = await started(Route(SlackSink("slack", slack.url)))
    dispatcher.publish(event(reason="<!channel> & " + "x" * 5000))
    await until(lambda: len(slack.received) == 1, 5, "slack message")
    await dispatcher.stop()
    body = slack.received[0].json()
    reason = next(f["text"] for f in body["blocks"][1]["fields"] if f["text"].startswith("*Reason*"))
    assert reason.startswith("*Reason*\n&lt;!channel&gt; &amp; ") and len(reason) <= 2000
    assert "<!channel>" not in json.dumps(body)


async def test_webhooks_are_signed_with_hmac_sha256(receivers: Callable[..., Receiver]) -> None:
    hook = receivers()
    key = "whsec-" + "k" * 24
    dispatcher = await started(Route(WebhookSink("webhook", hook.url, key, link="https://runbook.example/x")))
    dispatcher.publish(event(key="failover:api.example.com:3"))
    await until(lambda: len(hook.received) == 1, 5, "webhook")
    await dispatcher.stop()
    got = hook.received[0]
    expected = "sha256=" + hmac.new(key.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-failover-signature"], expected)
    assert got.headers["x-failover-event"] == "failover"
    body = got.json()
    assert body["version"] == 1 and body["event"] == "failover" and body["id"] == got.headers["x-failover-delivery"]
    assert (body["from"], body["to"], body["domain"]) == ("east", "west", "api.example.com")
    assert body["link"] == "https://runbook.example/x" and body["at"].endswith("Z")
    # a tampered body does not verify
    forged = got.body.replace(b"west", b"mars")
    assert hmac.new(key.encode(), forged, hashlib.sha256).hexdigest() not in got.headers["x-failover-signature"]


async def test_a_429_is_retried_after_what_retry_after_says(
    receivers: Callable[..., Receiver], metrics: Metrics
) -> None:
    slack = receivers(script=[Answer(429, "rate_limited", retry_after="1")])
    dispatcher = await started(Route(SlackSink("slack", slack.url)), metrics=metrics)
    dispatcher.publish(event())
    await until(lambda: len(slack.received) == 2, 10, "the retry")
    await until(lambda: value(metrics, "failover_alerts_sent_total", sink="slack", event="failover") == 1, 5, "sent")
    await dispatcher.stop()
    first, second = slack.received
    assert second.at - first.at >= 0.95, "Retry-After: 1 was not honoured"
    assert first.body == second.body
    assert value(metrics, "failover_alert_retries_total", sink="slack") == 1


async def test_5xx_and_timeouts_are_retried_with_backoff_4xx_is_not(
    receivers: Callable[..., Receiver], metrics: Metrics
) -> None:
    flaky = receivers(script=[Answer(500), Answer(503)])
    wrong = receivers(default=Answer(404, "no_service"))
    dispatcher = await started(
        Route(SlackSink("flaky", flaky.url)), Route(SlackSink("wrong", wrong.url)), metrics=metrics
    )
    dispatcher.publish(event())
    await until(lambda: value(metrics, "failover_alerts_sent_total", sink="flaky", event="failover") == 1, 10, "sent")
    await until(lambda: value(metrics, "failover_alert_failures_total", sink="wrong", event="failover") == 1, 5, "fail")
    await dispatcher.stop()
    assert len(flaky.received) == 3 and value(metrics, "failover_alert_retries_total", sink="flaky") == 2
    assert len(wrong.received) == 1  # a 404 will not get better: no retry


async def test_a_hanging_or_dead_receiver_delays_nothing_else(
    receivers: Callable[..., Receiver], metrics: Metrics
) -> None:
    hanging = receivers(default=Answer(hang=True))
    healthy = receivers()
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    dispatcher = await started(
        Route(SlackSink("hanging", hanging.url, timeout=0.5), retries=1),
        Route(WebhookSink("dead", dead, timeout=0.5), retries=1),
        Route(SlackSink("healthy", healthy.url)),
        metrics=metrics,
    )
    began = time.perf_counter()
    for number in range(3):
        dispatcher.publish(event(key=f"k{number}"))
    assert time.perf_counter() - began < 0.2, "publish waited on the network"
    await until(lambda: len(healthy.received) == 3, 3, "the healthy sink got all three")
    assert len(hanging.received) <= 1  # still stuck on the first
    await until(lambda: value(metrics, "failover_alert_failures_total", sink="dead", event="failover") == 3, 10, "dead")
    await until(
        lambda: value(metrics, "failover_alert_failures_total", sink="hanging", event="failover") >= 1, 10, "hung"
    )
    await dispatcher.stop(flush_timeout=0.1)


async def test_a_full_queue_drops_the_oldest_and_counts_it(
    receivers: Callable[..., Receiver], metrics: Metrics
) -> None:
    slow = receivers(script=[Answer(hang=True)])
    dispatcher = await started(
        Route(SlackSink("slow", slow.url, timeout=1.0), retries=0, queue_size=2), metrics=metrics
    )
    dispatcher.publish(event(key="first", reason="first"))
    await until(lambda: len(slow.received) == 1, 5, "the first in flight")
    for name in ("second", "third", "fourth", "fifth"):
        dispatcher.publish(event(key=name, reason=name))
    await until(lambda: value(metrics, "failover_alerts_dropped_total", sink="slow") == 2, 5, "two dropped")
    await until(lambda: len(slow.received) == 3, 10, "the newest two sent")
    await dispatcher.stop()
    reasons = [json.dumps(r.json()) for r in slow.received]
    assert "first" in reasons[0] and "fourth" in reasons[1] and "fifth" in reasons[2]


async def test_repeats_within_the_window_are_sent_once(receivers: Callable[..., Receiver], metrics: Metrics) -> None:
    slack = receivers()
    dispatcher = await started(Route(SlackSink("slack", slack.url), dedupe_window=60), metrics=metrics)
    for _ in range(5):
        dispatcher.publish(event("adapter_error", key="adapter_error:api.example.com:rfc2136"))
    dispatcher.publish(event("adapter_error", key="adapter_error:api.example.com:route53"))
    await dispatcher.flush(5)
    assert len(slack.received) == 2
    assert value(metrics, "failover_alerts_deduplicated_total", sink="slack", event="adapter_error") == 4
    await dispatcher.stop()


async def test_only_the_events_a_sink_asks_for(receivers: Callable[..., Receiver]) -> None:
    slack = receivers()
    dispatcher = await started(Route(SlackSink("slack", slack.url), events=frozenset({"failover"})))
    dispatcher.publish(event("region_up", key="a"))
    dispatcher.publish(event("failover", key="b"))
    await dispatcher.flush(5)
    await dispatcher.stop()
    assert [r.json()["blocks"][0]["text"]["text"].split(":")[0] for r in slack.received] == ["Failover"]


async def test_stop_flushes_what_is_queued(receivers: Callable[..., Receiver]) -> None:
    slack = receivers()
    dispatcher = await started(Route(SlackSink("slack", slack.url)))
    for number in range(5):
        dispatcher.publish(event(key=str(number)))
    await dispatcher.stop(flush_timeout=5)
    assert len(slack.received) == 5


async def test_no_secret_ever_reaches_a_receiver(
    receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    slack, hook = receivers(), receivers()
    tsig = "c2VjcmV0LXRzaWcta2V5LWJ5dGVzLTAxMjM0NTY3ODk="
    token = "api-token-0123456789abcdef"
    signing = "whsec-signing-key-0123456789"
    monkeypatch.setenv("FAILOVER_TSIG_SECRET", tsig)
    monkeypatch.setenv("FAILOVER_API_TOKEN", token)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("HOOK_URL", hook.url)
    monkeypatch.setenv("HOOK_KEY", signing)
    policy = parse_policy(
        {
            "service": "payments-api",
            "observer": "east",
            "regions": EAST_WEST,
            "domains": [
                {
                    "name": "api.example.com",
                    "checks": [{"kind": "tcp", "port": 9}],
                    "traffic": [
                        {
                            "kind": "rfc2136",
                            "server": "127.0.0.1:53",
                            "zone": "example.com.",
                            "tsig": {"name": "k.", "secret_env": "FAILOVER_TSIG_SECRET"},
                        }
                    ],
                }
            ],
            "alerts": [
                {"kind": "slack", "webhook_env": "SLACK_WEBHOOK_URL"},
                {"kind": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_KEY"},
            ],
            "api": {"token_env": "FAILOVER_API_TOKEN"},
        }
    )
    assert {tsig, token, signing, slack.url, hook.url} <= set(policy_secrets(policy))
    dispatcher = build_dispatcher(policy, backoff_initial=0.05)
    await dispatcher.start()
    leaky = f"adapter said: bad key {tsig} for token {token} at {slack.url}"
    dispatcher.publish(event("adapter_error", reason=leaky, by=token, details=(leaky,), key="x"))
    await dispatcher.stop(flush_timeout=5)
    payloads = slack.raw() + hook.raw()
    assert len(payloads) == 2
    for body in payloads:
        for secret in (tsig, token, signing, slack.url, hook.url):
            assert secret.encode() not in body and json.dumps(secret)[1:-1].encode() not in body
        assert b"[redacted]" in body


async def test_a_missing_alert_url_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_SLACK_URL", raising=False)
    policy = small_policy(alerts=[{"kind": "slack", "webhook_env": "NOT_SET_SLACK_URL"}])
    with pytest.raises(UsageError, match="NOT_SET_SLACK_URL"):
        build_dispatcher(policy)


async def test_down_up_down_is_news_each_time(receivers: Callable[..., Receiver]) -> None:
    slack = receivers()
    dispatcher = await started(Route(SlackSink("slack", slack.url), dedupe_window=600))
    down = {"key": "region_down:d:east", "resets": ("region_up:d:east",)}
    up = {"key": "region_up:d:east", "resets": ("region_down:d:east",)}
    for kind, fields in (("region_down", down), ("region_down", down), ("region_up", up), ("region_down", down)):
        dispatcher.publish(event(kind, **fields))
    await dispatcher.flush(5)
    await dispatcher.stop()
    assert [r.json()["blocks"][0]["text"]["text"].split(":")[0] for r in slack.received] == [
        "Region down",
        "Region up",
        "Region down",
    ]
