"""Keeps a proxy on the latest decision and the gateways' verdicts: the follow rule, in one place.

``plan_traffic`` is the rule, a pure function both proxy kinds use (the embedded relay through
``RouteFollower``, an existing HAProxy through ``failover.proxy.haproxy``). It is applied at once
on every verdict change (before DNS is touched) and after every evaluation:
new connections go to the primary region's gateways that are not down, then the
secondary's. Gateways without a verdict yet still get traffic; a dead one is ejected by the
proxy's own connect failures.

The decision and the verdicts come in as two callables (the coordinator's
``decided_state`` and ``gateway_statuses``), so the proxy never imports the coordinator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from failover.model import DomainState, Status
from failover.proxy._route import Route

if TYPE_CHECKING:
    from failover.policy import Policy
    from failover.proxy._proxy import Proxy

Role = Literal["active", "standby", "idle", "down"]
"""``active``: gets new connections; ``standby``: usable, next in line (the secondary's);
``idle``: not down, but in a region that is neither primary nor secondary (e.g. drained);
``down``: the probes say so."""


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """Where traffic should go. ``tiers``: each region's usable gateways as ``(name, address)``,
    the primary's first, then the secondary's (regions with none usable keep an empty tier)."""

    tiers: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    down: frozenset[str] = frozenset()

    @property
    def route(self) -> Route:
        return Route(tuple((region, tuple(address for _, address in gws)) for region, gws in self.tiers))

    @property
    def fail_static(self) -> bool:
        """No gateway of the primary or the secondary is usable."""
        return not any(gws for _, gws in self.tiers)

    @property
    def primary(self) -> str | None:
        return self.tiers[0][0] if self.tiers else None

    def role(self, gateway: str) -> Role:
        """A gateway's part: active in the first tier that has any gateway, standby further down."""
        if gateway in self.down:
            return "down"
        first = True
        for _, gws in self.tiers:
            if any(name == gateway for name, _ in gws):
                return "active" if first else "standby"
            first = first and not gws
        return "idle"


def plan_traffic(policy: Policy, state: DomainState | None, statuses: Mapping[str, Status]) -> TrafficPlan | None:
    """The follow rule. None before any decision (nothing to follow yet)."""
    if state is None or state.primary is None:
        return None
    by_name = {r.name: r for r in policy.regions}
    tiers: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for name in (state.primary, state.secondary):
        region = by_name.get(name) if name is not None else None
        if region is not None and all(region.name != t[0] for t in tiers):
            usable = tuple(
                (gw.name, gw.address)
                for gw in region.gateways
                if statuses.get(gw.name, Status.UNKNOWN) is not Status.DOWN
            )
            tiers.append((region.name, usable))
    down = frozenset(name for name, status in statuses.items() if status is Status.DOWN)
    return TrafficPlan(tuple(tiers), down)


class RouteFollower:
    """``decided(domain)``: the latest decision (before the first evaluation, what the store
    last held), or None. ``statuses(domain)``: each gateway's current verdict, by name.
    Both are called on every route update, so they should answer from memory (a store read at most once)."""

    def __init__(
        self,
        proxy: Proxy,
        policy: Policy,
        domain: str,
        decided: Callable[[str], DomainState | None],
        statuses: Callable[[str], Mapping[str, Status]],
    ) -> None:
        self.proxy = proxy
        self.policy = policy
        self.domain = domain
        self._decided = decided
        self._statuses = statuses

    def route(self) -> Route:
        plan = plan_traffic(self.policy, self._decided(self.domain), self._statuses(self.domain))
        return Route() if plan is None else plan.route

    def __call__(self, _: object = None) -> None:
        self.proxy.set_route(self.route())
