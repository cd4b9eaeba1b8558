"""Traffic adapters, one module per backend, built from policy blocks by ``build_adapter``."""

from __future__ import annotations

import importlib

from failover.adapters.abc import Adapter, Desired, Live, LiveExtra, Marker, Plan, marker_name
from failover.policy import Policy, Traffic

__all__ = ["Adapter", "Desired", "Live", "LiveExtra", "Marker", "Plan", "build_adapter", "marker_name"]

# kind -> "module:Class"; imported lazily so a cron run pays only for the SDKs it uses.
BACKENDS: dict[str, str] = {
    "rfc2136": "failover.adapters.rfc2136:Rfc2136Adapter",
    "zonefile": "failover.adapters.zonefile:ZonefileAdapter",
    "route53": "failover.adapters.route53:Route53Adapter",
    "clouddns": "failover.adapters.clouddns:CloudDnsAdapter",
    "eip": "failover.adapters.eip:EipAdapter",
}


def build_adapter(block: Traffic, domain: str, policy: Policy) -> Adapter:
    """One adapter for one ``traffic`` block of one domain of ``policy``."""
    module_name, class_name = BACKENDS[block.kind].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{module_name}.{class_name} is not an Adapter")
    return cls.from_policy(block, domain, policy)
