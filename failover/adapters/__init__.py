"""Traffic adapters, one module per backend, built from policy blocks by ``build_adapter``."""

from __future__ import annotations

import importlib
from typing import Any

from failover.adapters.abc import Adapter, Desired, Live, Marker, Plan, marker_name

__all__ = ["Adapter", "Desired", "Live", "Marker", "Plan", "build_adapter", "marker_name"]

# kind -> "module:Class"; imported lazily so a cron run pays only for the SDKs it uses.
BACKENDS: dict[str, str] = {
    "rfc2136": "failover.adapters.rfc2136:Rfc2136Adapter",
    "zonefile": "failover.adapters.zonefile:ZonefileAdapter",
    "route53": "failover.adapters.route53:Route53Adapter",
    "clouddns": "failover.adapters.clouddns:CloudDnsAdapter",
    "eip": "failover.adapters.eip:EipAdapter",
}


def build_adapter(block: Any, domain: str, policy_source: str | None = None) -> Adapter:
    """One adapter for one ``traffic`` block of one domain. ``policy_source`` resolves relative paths."""
    module_name, class_name = BACKENDS[block.kind].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    adapter: Adapter = cls.from_policy(block, domain, policy_source)
    return adapter
