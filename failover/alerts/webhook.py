"""Generic JSON webhooks, signed with HMAC-SHA256.

The body is ``Event.to_json()`` (``"version": 1``). With a signing key, the request carries
``X-Failover-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``; the body holds a
unique ``id`` and the time ``at``, so a receiver can refuse replays. Receivers verify with::

    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    hmac.compare_digest(expected, request.headers["X-Failover-Signature"])
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from failover.alerts._http import HttpSink
from failover.alerts.abc import Event

SIGNATURE_HEADER = "X-Failover-Signature"


def sign(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class WebhookSink(HttpSink):
    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None = None,
        timeout: float = 5.0,
        link: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(name, url, timeout, transport)
        self._key = secret.encode() if secret else None
        self.link = link

    def payload(self, event: Event) -> bytes:
        return json.dumps(event.to_json(self.link), ensure_ascii=False, sort_keys=True).encode()

    async def send(self, event: Event) -> None:
        body = self.payload(event)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Failover-Event": event.kind,
            "X-Failover-Delivery": event.id,
        }
        if self._key is not None:
            headers[SIGNATURE_HEADER] = sign(self._key, body)
        await self.post(body, headers)
