"""Reconciliation: make each adapter's live records match one recorded decision.

Per adapter: plan against what was read, apply only the difference (fenced by the marker that
was read), verify by reading back. The audit log hears of the change before it is sent and
after it is verified; a lost race re-reads and counts as in sync when the other writer
published this very decision.
"""

from __future__ import annotations

import time

from failover import events as ev
from failover.adapters.abc import Adapter, Desired, Live, sort_addresses
from failover.coordinator._context import Context
from failover.errors import AdapterError, FailoverError, LostRace
from failover.model import AdapterAction, AdapterOutcome, DomainState, Snapshot, Status


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def publishable(self, domain: str, region: str, snap: Snapshot, forced: bool = False) -> tuple[str, ...]:
        """The region's gateways that are up for the domain; all of them when forced there.
        Empty for a region no longer in the policy (a stored primary that was removed)."""
        found = [r for r in self.ctx.policy.regions if r.name == region]
        if not found:
            return ()
        gateways = found[0].gateways
        seen = snap.gateways[domain]  # a gateway discovered after the snapshot has no verdict in it yet
        up = [gw.address for gw in gateways if gw.name in seen and seen[gw.name][0] is Status.UP]
        if not up and forced:
            up = [gw.address for gw in gateways]
        return sort_addresses(up)

    def _already_applied(self, adapter: Adapter, desired: Desired) -> bool:
        """After a lost race: re-read; True when what is live now is what we wanted."""
        try:
            return adapter.plan(adapter.read(), desired).noop
        except FailoverError:
            return False

    def reconcile(
        self,
        adapter: Adapter,
        live: Live | AdapterError,
        state: DomainState,
        addresses: tuple[str, ...],
        healthy: dict[str, tuple[str, ...]],
        apply: bool,
        token: int = 0,
    ) -> AdapterOutcome:
        """``token``: the acting leader's fencing token, written into the marker; an adapter
        refuses to act when the live marker holds a newer one."""
        ctx = self.ctx
        domain = state.domain
        if isinstance(live, AdapterError):
            ctx.emit(ev.AdapterFailed, domain=domain, adapter=adapter.name, error=str(live))
            return AdapterOutcome(adapter.name, AdapterAction.ERROR, str(live))
        if not addresses:
            detail = f"no healthy gateway in {state.primary}: leaving the live records as they are"
            return AdapterOutcome(adapter.name, AdapterAction.SKIPPED, detail)
        desired = Desired(
            domain,
            state.primary or "",
            state.epoch,
            addresses,
            adapter.ttl,
            ctx.observer,
            int(ctx.clock()),
            healthy,
            token,
        )
        try:
            plan = adapter.plan(live, desired)
        except LostRace as exc:
            ctx.emit(ev.RaceLost, domain=domain, adapter=adapter.name, detail=str(exc))
            return AdapterOutcome(adapter.name, AdapterAction.LOST_RACE, str(exc))
        if plan.noop:
            return AdapterOutcome(adapter.name, AdapterAction.NOOP, "in sync")
        if not apply:
            return AdapterOutcome(adapter.name, AdapterAction.PLANNED, "would change", plan.changes)
        ctx.emit(ev.AdapterApplying, domain=domain, adapter=adapter.name, epoch=state.epoch, changes=plan.changes)
        started = time.monotonic()
        try:
            adapter.apply(plan)
            adapter.verify(desired)
        except LostRace as exc:
            ctx.emit(ev.RaceLost, domain=domain, adapter=adapter.name, detail=str(exc))
            if self._already_applied(adapter, desired):
                # the other writer (the daemon, beside an operator's command) published this very decision
                detail = "another coordinator applied the same decision first"
                return AdapterOutcome(adapter.name, AdapterAction.NOOP, detail)
            return AdapterOutcome(adapter.name, AdapterAction.LOST_RACE, str(exc), plan.changes)
        except FailoverError as exc:
            ctx.emit(ev.AdapterFailed, domain=domain, adapter=adapter.name, error=str(exc))
            return AdapterOutcome(adapter.name, AdapterAction.ERROR, str(exc), plan.changes)
        took = time.monotonic() - started
        ctx.emit(
            ev.AdapterApplied,
            domain=domain,
            adapter=adapter.name,
            epoch=state.epoch,
            changes=plan.changes,
            seconds=took,
        )
        return AdapterOutcome(
            adapter.name, AdapterAction.APPLIED, f"applied and verified in {took * 1000:.0f}ms", plan.changes
        )
