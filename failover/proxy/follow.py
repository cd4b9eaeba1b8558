"""Keeps an embedded proxy's route on the latest decision and the gateways' verdicts.

Called at once on every verdict change (before DNS is touched) and after every evaluation:
new connections go to the primary region's gateways that are not down, then the
secondary's. Gateways without a verdict yet still get traffic; a dead one is ejected by the
proxy's own connect failures.

The decision and the verdicts come in as two callables (the coordinator's
``decided_state`` and ``gateway_statuses``), so the proxy never imports the coordinator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from failover.model import DomainState, Status
from failover.proxy._proxy import Proxy
from failover.proxy._route import Route

if TYPE_CHECKING:
    from failover.policy import Policy


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
        state = self._decided(self.domain)
        if state is None or state.primary is None:
            return Route()
        statuses = self._statuses(self.domain)
        return Route.for_regions(
            self.policy,
            (state.primary, state.secondary),
            lambda gateway: statuses.get(gateway, Status.UNKNOWN) is not Status.DOWN,
        )

    def __call__(self, _: object = None) -> None:
        self.proxy.set_route(self.route())
