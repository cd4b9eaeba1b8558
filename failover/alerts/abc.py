"""What an alert is and what a sink must do.

Contract every sink keeps:

* ``send(event)`` delivers one event or raises. It raises ``Retryable`` when trying again
  may help (a timeout, a refused connection, a 5xx, a 429 — with ``retry_after`` when the
  receiver said how long to wait) and ``AlertError`` when it will not (a 4xx: the URL or the
  payload is wrong). It never retries by itself and never sleeps: the dispatcher owns retries,
  backoff, de-duplication and the bounded queue.
* ``send`` finishes within the sink's ``timeout`` (one HTTP attempt).
* A sink puts only the event's fields into its payload: never a URL, token or key it holds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from failover.policy import AlertEvent

Severity = Literal["info", "warning", "critical"]

TITLES: dict[str, str] = {
    "failover": "Failover",
    "failback": "Failback",
    "elected": "Primary elected",
    "region_down": "Region down",
    "region_up": "Region up",
    "override_set": "Manual override",
    "override_released": "Override released",
    "override_expired": "Override expired",
    "drain": "Region drained",
    "undrain": "Region back in election",
    "adapter_error": "Traffic change failed",
    "lost_race": "Lost a race to another coordinator",
    "certificate_expiring": "Certificate expiring",
    "quorum_lost": "Quorum of observers lost",
    "leader_changed": "Leader changed",
}


@dataclass(frozen=True)
class Event:
    """One thing worth telling people, already phrased for them."""

    kind: AlertEvent
    summary: str  # one line, the message's first line
    service: str
    observer: str
    at: float
    domain: str | None = None  # None: every domain of the service
    region: str | None = None  # the region it is about (down, up, drained, promoted)
    from_region: str | None = None
    to_region: str | None = None
    reason: str = ""
    by: str | None = None  # who, for operator actions
    severity: Severity = "info"
    details: tuple[str, ...] = ()  # what was applied and verified, what failed
    key: str = ""  # de-duplication key: the same key within the window is a repeat
    resets: tuple[str, ...] = ()  # keys this event makes news again (region_up resets region_down)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def title(self) -> str:
        return TITLES.get(self.kind, self.kind)

    @property
    def iso_at(self) -> str:
        return dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def link(self, template: str | None) -> str | None:
        return template.replace("{domain}", self.domain or "") if template else None

    def to_json(self, link: str | None = None) -> dict[str, Any]:
        """The generic webhook payload (version 1)."""
        return {
            "version": 1,
            "id": self.id,
            "event": self.kind,
            "severity": self.severity,
            "summary": self.summary,
            "service": self.service,
            "observer": self.observer,
            "at": self.iso_at,
            "domain": self.domain,
            "region": self.region,
            "from": self.from_region,
            "to": self.to_region,
            "reason": self.reason,
            "by": self.by,
            "details": list(self.details),
            "link": self.link(link),
        }



class Sink(ABC):
    name: str  # label in metrics and logs
    timeout: float

    @abstractmethod
    async def send(self, event: Event) -> None: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (RFC 9110: delay-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = dt.datetime.strptime(text, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
