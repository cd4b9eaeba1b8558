"""Slack incoming webhooks: one Block Kit message per event.

The message says what happened (header), then fields: domain, from → to, region, reason,
who (for operator actions), a link when the policy sets one, and what was verified. Slack's
limits are respected (header 150 characters, a field 2000, ten fields); text that came from
outside (reasons, error messages) is escaped for mrkdwn.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from failover.alerts._http import HttpSink
from failover.alerts.abc import Event

ICONS = {"info": ":large_blue_circle:", "warning": ":warning:", "critical": ":rotating_light:"}


def escape(text: str) -> str:
    """Slack mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def blocks(event: Event, link: str | None = None) -> dict[str, Any]:
    """The webhook payload: ``text`` (notifications, fallback) and ``blocks``."""
    fields: list[tuple[str, str]] = []
    if event.domain is not None or event.kind in ("failover", "failback", "override_set", "override_released"):
        fields.append(("Domain", escape(event.domain or "all domains")))
    if event.from_region or event.to_region:
        fields.append(("From → to", f"{escape(event.from_region or '-')} → *{escape(event.to_region or '-')}*"))
    if event.region and event.region not in (event.from_region, event.to_region):
        fields.append(("Region", escape(event.region)))
    if event.reason:
        fields.append(("Reason", escape(event.reason)))
    if event.by:
        fields.append(("By", escape(event.by)))
    url = event.link(link)
    if url:
        fields.append(("Link", f"<{url.replace('|', '%7C').replace('>', '%3E')}|open>"))
    section = [{"type": "mrkdwn", "text": _cut(f"*{name}*\n{value}", 2000)} for name, value in fields[:10]]
    payload_blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"{event.title}: {event.summary}", 150)}},
    ]
    if section:
        payload_blocks.append({"type": "section", "fields": section})
    if event.details:
        lines = "\n".join(f"• {escape(line)}" for line in event.details)
        payload_blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(lines, 3000)}})
    payload_blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": escape(f"{event.service} · seen by {event.observer} · {event.iso_at} · {event.kind}"),
                }
            ],
        }
    )
    text = f"{ICONS[event.severity]} {event.title}: {event.summary}"
    if event.reason:
        text += f" ({event.reason})"
    return {"text": escape(_cut(text, 3000)), "blocks": payload_blocks}


class SlackSink(HttpSink):
    def __init__(
        self,
        name: str,
        webhook_url: str,
        timeout: float = 5.0,
        link: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(name, webhook_url, timeout, transport)
        self.link = link

    def payload(self, event: Event) -> bytes:
        return json.dumps(blocks(event, self.link), ensure_ascii=False).encode()

    async def send(self, event: Event) -> None:
        await self.post(self.payload(event), {"Content-Type": "application/json; charset=utf-8"})
