"""The embedded per-region L4 proxy: relays every connection to the elected region's gateways.

``Proxy`` is built from the policy's ``proxy`` block; ``Route`` says where new connections
go. See ``docs/proxy.md``.
"""

from failover.proxy._proxy import Proxy
from failover.proxy._route import Route, Tier
from failover.proxy._settings import Settings
from failover.proxy._stats import ProxyStats, UpstreamStats

__all__ = ["Proxy", "ProxyStats", "Route", "Settings", "Tier", "UpstreamStats"]
