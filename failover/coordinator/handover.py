"""An operator's change made on a coordinator that does not lead: hand it to the leader.

With a shared store only the leader writes DNS. ``promote``, ``release`` and ``drain`` run
anywhere record the intent, then wait, with a deadline, until the leader has recorded the
decision that intent calls for and every adapter's live marker shows it (read from the
provider, as ``verify`` does). No answer in time is an operational failure (exit 1): the
intent stays recorded and the leader still applies it when it can.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from failover import engine
from failover.coordinator._coordinator import Coordinator
from failover.errors import FailoverError
from failover.model import AdapterAction, AdapterOutcome, Decision, DomainOutcome, effective_override

WAIT = 30.0  # seconds: a few leader renewals and one provider change


def wait_for_leader(coordinator: Coordinator, domains: Sequence[str], wait: float = WAIT) -> list[DomainOutcome]:
    store, policy = coordinator.store, coordinator.policy
    snap = coordinator.snapshot()
    overrides, drained = store.overrides(), frozenset(store.drains())
    wanted: dict[str, Decision] = {}
    for domain in domains:
        override = effective_override(overrides, domain, snap.now)
        current = store.get_state(domain)
        wanted[domain] = engine.decide(
            domain, policy.regions, current, snap.health[domain], drained, override, policy.election, snap.now
        )
    deadline = time.monotonic() + wait
    while True:
        pending: list[str] = []
        outcomes: list[DomainOutcome] = []
        for domain in domains:
            want = wanted[domain].state.primary
            state = store.get_state(domain)
            if state is None or state.primary != want:
                pending.append(f"{domain}: the leader has not recorded {want} as primary yet")
                continue
            outcome = DomainOutcome(Decision(wanted[domain].kind, state.reason, state, False))
            for adapter in coordinator.adapters[domain]:
                try:
                    marker = adapter.read().marker
                except FailoverError as exc:
                    pending.append(f"{domain}: {adapter.name}: {exc}")
                    continue
                if marker is None or (marker.epoch, marker.primary) != (state.epoch, state.primary):
                    pending.append(f"{domain}: {adapter.name} does not show epoch {state.epoch} ({want}) yet")
                    continue
                detail = f"applied and verified by the leader ({marker.by})"
                outcome.adapters.append(AdapterOutcome(adapter.name, AdapterAction.APPLIED, detail))
            outcomes.append(outcome)
        if not pending:
            return outcomes
        if time.monotonic() >= deadline:
            leader = store.leader() or "none"
            raise FailoverError(
                f"recorded, but the leader ({leader}) did not apply it within {wait:g}s:\n  " + "\n  ".join(pending)
            )
        time.sleep(0.2)
