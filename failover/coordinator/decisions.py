"""Decisions: the pure engine plus what makes its output the one agreed decision.

Per domain: adopt a newer marker written by a coordinator that shares no store with us (its
``at`` then counts for our hold-down and budget), ask the engine, and record the decision with
a compare-and-set on the epoch it was based on. Expired overrides are dropped by identity, so
an old one never deletes a newer one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from failover import engine
from failover import events as ev
from failover.adapters.abc import Live
from failover.coordinator._context import Context
from failover.model import Decision, DomainState, Snapshot, effective_override


class Decisions:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._decided: dict[str, DomainState] = {}  # the latest recorded decision per domain

    def latest(self, domain: str) -> DomainState | None:
        with self._lock:
            return self._decided.get(domain)

    def expire_overrides(self, now: float) -> None:
        ctx = self.ctx
        if not ctx.persist:
            return
        for key, override in ctx.store.overrides().items():
            if not override.active(now) and ctx.store.clear_override(key, expect=override) is not None:
                scope = None if key == "*" else key
                ctx.emit(ev.OverrideExpired, domain=scope, region=override.region, set_by=override.by)

    def decide(self, domain: str, snap: Snapshot, lives: Sequence[Live]) -> Decision | None:
        """Decide and record; None when another coordinator recorded first (re-read, decide again)."""
        ctx = self.ctx
        stored = ctx.store.get_state(domain)
        state = self._adopt_marker(domain, stored, lives)
        # Operator intent is read now, not with the snapshot: a promote or drain recorded while
        # an earlier domain was being applied must win here.
        overrides = ctx.store.overrides() if ctx.persist else snap.overrides
        drained = frozenset(ctx.store.drains()) if ctx.persist else snap.drained
        decision = engine.decide(
            domain,
            ctx.policy.regions,
            state,
            snap.health[domain],
            drained,
            effective_override(overrides, domain, snap.now),
            ctx.policy.election,
            snap.now,
        )
        if ctx.persist:
            if not self._record(decision, state):
                return None
            with self._lock:
                self._decided[domain] = decision.state
        return decision

    def _adopt_marker(self, domain: str, state: DomainState | None, lives: Sequence[Live]) -> DomainState | None:
        """A coordinator that shares no store with us may have decided later: its marker wins,
        and our hold-down and budget count from its ``at``."""
        markers = [live.marker for live in lives if live.marker is not None]
        if not markers:
            return state
        newest = max(markers, key=lambda m: m.epoch)
        current = state or DomainState(domain=domain)
        if newest.epoch < current.epoch or (newest.epoch == current.epoch and newest.primary == current.primary):
            return state
        if newest.by == self.ctx.observer and newest.epoch == current.epoch:
            return state
        moved = newest.primary != current.primary
        adopted = replace(
            current,
            primary=newest.primary,
            epoch=newest.epoch,
            changed_at=float(newest.at) if moved else current.changed_at,
            failovers=current.failovers + ((float(newest.at),) if moved and current.primary else ()),
            reason=f"adopted the marker written by {newest.by}: {newest.text()}",
        )
        if self.ctx.persist:
            if not self.ctx.store.put_state(adopted, state.epoch if state else None):
                return self.ctx.store.get_state(domain)  # someone recorded first: decide on theirs
            self.ctx.emit(
                ev.MarkerAdopted,
                domain=domain,
                primary=newest.primary,
                epoch=newest.epoch,
                written_by=newest.by,
                reason=adopted.reason,
            )
        return adopted

    def _record(self, decision: Decision, base: DomainState | None) -> bool:
        """Compare-and-set on the epoch the decision was based on; False: someone else won."""
        new = decision.state
        if base is not None and (base.primary, base.secondary, base.epoch, base.reason) == (
            new.primary,
            new.secondary,
            new.epoch,
            new.reason,
        ):
            return True
        if not self.ctx.store.put_state(new, base.epoch if base else None):
            return False
        if decision.changed:
            self.ctx.emit(
                ev.PrimaryChanged,
                domain=new.domain,
                kind=decision.kind,
                previous=base.primary if base else None,
                primary=new.primary,
                secondary=new.secondary,
                epoch=new.epoch,
                reason=decision.reason,
            )
        elif decision.kind.explains_inaction:
            self.ctx.emit(
                ev.DecisionHeld,
                domain=new.domain,
                kind=decision.kind,
                primary=new.primary,
                epoch=new.epoch,
                reason=decision.reason,
            )
        return True
