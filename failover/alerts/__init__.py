"""Alerts: Slack and generic webhooks hear about every change, without ever delaying one.

``abc`` says what an event and a sink are; ``slack`` and ``webhook`` are the sinks;
``dispatch`` queues, de-duplicates, retries and scrubs secrets; ``events`` turns the
coordinator's domain events, operator operations and evaluations into alerts. ``build_dispatcher`` makes the
sinks the policy asks for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from failover.alerts.abc import Event, Sink
from failover.alerts.dispatch import Dispatcher, Redactor, Route
from failover.alerts.events import Notifier
from failover.alerts.slack import SlackSink
from failover.alerts.webhook import WebhookSink
from failover.errors import Retryable
from failover.policy import Policy, SlackAlert, require_env

if TYPE_CHECKING:
    from failover.metrics import Metrics

__all__ = [
    "Dispatcher",
    "Event",
    "Notifier",
    "Redactor",
    "Retryable",
    "Route",
    "Sink",
    "SlackSink",
    "WebhookSink",
    "build_dispatcher",
    "policy_secrets",
]

# Secrets a deployment may hold in its environment although the policy does not name them.
AMBIENT_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GOOGLE_OAUTH_ACCESS_TOKEN")


def _env_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.endswith("_env") and isinstance(item, str):
                yield item
            else:
                yield from _env_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _env_names(item)


def policy_secrets(policy: Policy) -> list[str]:
    """The values of every environment variable the policy names (``*_env``: TSIG secrets, the
    API token, webhook URLs and keys) plus the usual cloud credentials: never to be sent."""
    names = set(_env_names(policy.model_dump())) | set(AMBIENT_SECRETS)
    return [value for name in sorted(names) if (value := os.environ.get(name))]


def build_dispatcher(policy: Policy, metrics: Metrics | None = None, **options: Any) -> Dispatcher:
    """One route per ``alerts`` block. A missing URL variable is a UsageError (exit 2)."""
    routes: list[Route] = []
    used: dict[str, int] = {}
    for index, block in enumerate(policy.alerts):
        used[block.kind] = used.get(block.kind, 0) + 1
        name = block.name or (block.kind if used[block.kind] == 1 else f"{block.kind}-{used[block.kind]}")
        sink: Sink
        if isinstance(block, SlackAlert):
            url = require_env(block.webhook_env, f"alerts[{index}] (slack)")
            sink = SlackSink(name, url, block.timeout, block.link)
        else:
            url = require_env(block.url_env, f"alerts[{index}] (webhook)")
            secret = require_env(block.secret_env, f"alerts[{index}].secret_env") if block.secret_env else None
            sink = WebhookSink(name, url, secret, block.timeout, block.link)
        events = frozenset(block.events) if block.events is not None else None
        routes.append(Route(sink, events, block.dedupe_window, block.retries, block.queue_size))
    return Dispatcher(routes, metrics, policy_secrets(policy), **options)
