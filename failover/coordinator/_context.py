"""What every part of the coordinator shares: the policy, the store, the clock, the event bus."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from failover import events as ev
from failover.policy import Policy
from failover.store.abc import Store

E = TypeVar("E", bound=ev.Event)


@dataclass
class Context:
    policy: Policy
    store: Store  # replaced once by the daemon's metrics (a counting wrapper): read it at each use
    clock: Callable[[], float]
    persist: bool  # False: plan and check runs that must leave the store as it is
    bus: ev.EventBus = field(default_factory=ev.EventBus)

    @property
    def observer(self) -> str:
        return self.policy.observer

    def emit(self, cls: type[E], **fields: Any) -> E:
        """Build the event (stamped with now and this observer) and publish it."""
        fields.setdefault("at", self.clock())
        event = cls(observer=self.observer, **fields)
        self.bus.publish(event)
        return event

    def freshness(self) -> float:
        """How old another observer's report may be and still count."""
        return self.policy.report_freshness()
