"""Keeps an embedded proxy's route on the coordinator's latest decision and verdicts.

Called at once on every verdict change (before DNS is touched) and after every evaluation:
new connections go to the primary region's gateways that are not down, then the
secondary's. Gateways without a verdict yet still get traffic; a dead one is ejected by the
proxy's own connect failures.
"""

from __future__ import annotations

from failover.coordinator import Coordinator
from failover.model import DomainState, Status
from failover.proxy._proxy import Proxy
from failover.proxy._route import Route


class RouteFollower:
    def __init__(self, proxy: Proxy, coordinator: Coordinator, domain: str) -> None:
        self.proxy = proxy
        self.coordinator = coordinator
        self.domain = domain
        self._stored: DomainState | None = None
        self._stored_read = False

    def route(self) -> Route:
        state = self.coordinator.decided.get(self.domain)
        if state is None:
            if not self._stored_read:  # before the first evaluation: what the store last held
                self._stored = self.coordinator.store.get_state(self.domain)
                self._stored_read = True
            state = self._stored
        if state is None or state.primary is None:
            return Route()
        statuses = self.coordinator.gateway_statuses(self.domain)
        return Route.for_regions(
            self.coordinator.policy,
            (state.primary, state.secondary),
            lambda gateway: statuses.get(gateway, Status.UNKNOWN) is not Status.DOWN,
        )

    def __call__(self, _: object = None) -> None:
        self.proxy.set_route(self.route())
