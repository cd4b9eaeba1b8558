"""The policy itself: regions, gateways, domains, and the blocks that govern them."""

from __future__ import annotations

import re

from pydantic import (
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from failover.errors import UsageError
from failover.policy._blocks import Alert, Api, Election, Health, Proxy
from failover.policy._checks import Check
from failover.policy._discovery import GatewaysFrom
from failover.policy._metrics import MetricsBlock
from failover.policy._state import State
from failover.policy._traffic import Traffic
from failover.policy._types import IPAddress, Name, Strict


class Gateway(Strict):
    name: Name
    address: IPAddress


class Region(Strict):
    """A region's gateways: listed (gateways), found through DNS (gateways_from), or both."""

    # ``region.gateways`` is what every reader uses: the listed gateways (field ``listed``, key
    # ``gateways``), then the ones ``failover.discovery`` found, as of now.
    name: Name
    priority: int = Field(default=100, description="lower wins")
    listed: list[Gateway] = Field(default_factory=list, alias="gateways", description="gateways by name and address")
    gateways_from: GatewaysFrom | None = None
    _discovered: tuple[Gateway, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _some_gateways(self) -> Region:
        if not self.listed and self.gateways_from is None:
            raise ValueError("needs gateways, gateways_from or both")
        return self

    @property
    def gateways(self) -> list[Gateway]:
        """The gateways as of now: the listed ones, then the discovered ones."""
        return [*self.listed, *self._discovered] if self._discovered else self.listed

    def set_discovered(self, gateways: tuple[Gateway, ...]) -> None:
        """Discovery's current set (a listed name or address wins over a discovered one)."""
        names = {gw.name for gw in self.listed}
        addresses = {gw.address for gw in self.listed}
        self._discovered = tuple(gw for gw in gateways if gw.name not in names and gw.address not in addresses)


class Domain(Strict):
    name: str
    checks: list[Check] = Field(min_length=1)
    traffic: list[Traffic] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        labels = v.rstrip(".").split(".")
        if len(labels) < 2 or not all(re.fullmatch(r"[A-Za-z0-9_*]([A-Za-z0-9-]*[A-Za-z0-9])?", x) for x in labels):
            raise ValueError(f"'{v}' is not a domain name")
        return v.rstrip(".").lower()


class Policy(Strict):
    service: Name
    observer: str
    regions: list[Region] = Field(min_length=1)
    domains: list[Domain] = Field(min_length=1)
    health: Health = Health()
    election: Election = Election()
    observers: list[Name] | None = Field(
        default=None,
        min_length=1,
        description="the coordinators that vote (default: one per region, in order); "
        "a name that is not a region is a witness: it probes every region and votes, and never gets traffic",
    )
    state: State = State()
    alerts: list[Alert] = Field(default_factory=list)
    proxy: Proxy | None = None
    api: Api | None = None
    metrics: MetricsBlock | None = None
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The file this policy was loaded from (relative paths in it are relative to it)."""
        return self._source

    @property
    def voters(self) -> list[str]:
        """The observers whose reports count toward a quorum: ``observers``, or one per region."""
        return list(self.observers) if self.observers is not None else [r.name for r in self.regions]

    def report_freshness(self) -> float:
        """Seconds an observer's report stays a vote: three full rise/fall runs of the slowest
        check, plus 30 s for a cron-run observer's schedule."""
        longest = max(c.interval for d in self.domains for c in d.checks)
        return 3 * longest * max(self.health.rise, self.health.fall) + 30.0

    @property
    def witnesses(self) -> list[str]:
        """The voters that are not regions: they probe and vote, and never get traffic."""
        regions = {r.name for r in self.regions}
        return [name for name in self.voters if name not in regions]

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(r.name for r in self.regions)
        raise UsageError(f"unknown region '{name}' (regions in this policy: {known})")

    def domain(self, name: str) -> Domain:
        for domain in self.domains:
            if domain.name == name.rstrip(".").lower():
                return domain
        known = ", ".join(d.name for d in self.domains)
        raise UsageError(f"unknown domain '{name}' (domains in this policy: {known})")
