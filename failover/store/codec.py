"""JSON forms of the model's dataclasses, shared by the store backends."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from failover.model import AuditEntry, DomainState, Drain, Override, RegionHealth, Status, Streak


def dumps(obj: Any) -> str:
    return json.dumps(asdict(obj), sort_keys=True, separators=(",", ":"))


def state(text: str) -> DomainState:
    data = json.loads(text)
    data["failovers"] = tuple(data.get("failovers", ()))
    return DomainState(**data)


def streak(text: str) -> Streak:
    data = json.loads(text)
    data["status"] = Status(data["status"])
    return Streak(**data)


def region_health(text: str) -> RegionHealth:
    data = json.loads(text)
    data["status"] = Status(data["status"])
    data["gateways"] = tuple((str(name), Status(seen)) for name, seen in data.get("gateways", ()))
    return RegionHealth(**data)


def override(text: str) -> Override:
    return Override(**json.loads(text))


def drain(text: str) -> Drain:
    return Drain(**json.loads(text))


def audit(text: str) -> AuditEntry:
    return AuditEntry(**json.loads(text))
