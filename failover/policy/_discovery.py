"""``gateways_from``: a region's gateways named by a DNS name (a Kubernetes headless Service,
Consul's DNS interface) instead of, or beside, a list.

The set is resolved at run time (``failover.discovery``); what can be checked here is the
shape. What cannot be checked statically (``min_healthy_gateways`` against a set that is only
known at run time) is a warning for ``failover validate``: ``discovery_warnings``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from failover.policy._types import PositiveDuration, Strict, host_port

if TYPE_CHECKING:
    from failover.policy._model import Policy

_DNS_NAME = re.compile(r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}\.?$")


class GatewaysFrom(Strict):
    """Resolve ``dns`` every ``refresh``: A/AAAA give one gateway per address, named
    ``<region>-<address>``; SRV gives one per target, named after the target host (its port is
    not used: checks and the proxy have their own). A replica missing from the answers leaves
    after ``grace`` (sooner when its probes fail); a failed or empty answer keeps the last set."""

    dns: str = Field(description="the name to resolve, e.g. gw.east.svc.cluster.local")
    type: Literal["A", "AAAA", "SRV"] = "A"
    refresh: PositiveDuration = Field(default=30.0, description="how often the name is resolved again")
    grace: PositiveDuration | None = Field(
        default=None,
        description="how long a gateway missing from the answers stays (probed, published while up); "
        "default: three refreshes",
    )
    server: str | None = Field(default=None, description="host:port of the DNS server; default: the system resolver")
    timeout: PositiveDuration | None = Field(default=None, description="per resolution; default: 3s, at most refresh")
    startup_wait: PositiveDuration = Field(
        default=10.0, description="at start, how long to wait for a first answer before starting without one"
    )

    @field_validator("dns")
    @classmethod
    def _dns(cls, v: str) -> str:
        if not _DNS_NAME.match(v):
            raise ValueError(f"'{v}' is not a DNS name")
        return v.rstrip(".").lower()

    @field_validator("server")
    @classmethod
    def _server(cls, v: str | None) -> str | None:
        if v is not None:
            host_port(v, 53)
        return v

    @model_validator(mode="after")
    def _timeout_fits(self) -> GatewaysFrom:
        if self.timeout is not None and self.timeout > self.refresh:
            raise ValueError("timeout is longer than refresh: resolutions would pile up")
        return self

    @property
    def timeout_seconds(self) -> float:
        return self.timeout if self.timeout is not None else min(3.0, self.refresh)

    @property
    def grace_seconds(self) -> float:
        return self.grace if self.grace is not None else 3 * self.refresh

    @property
    def host_port(self) -> tuple[str, int] | None:
        return host_port(self.server, 53) if self.server is not None else None


def discovery_warnings(policy: Policy) -> list[str]:
    """What ``failover validate`` cannot check for a discovered region, as warning lines."""
    warnings: list[str] = []
    need = policy.health.min_healthy_gateways
    for i, region in enumerate(policy.regions):
        if region.gateways_from is not None and need > 1:
            warnings.append(
                f"regions[{i}].gateways_from: min_healthy_gateways ({need}) cannot be checked against "
                f"'{region.gateways_from.dns}' before it is resolved: with fewer replicas than that, "
                f"region '{region.name}' is never healthy"
            )
    return warnings
