"""One coordinator cycle: record verdicts, take one snapshot, decide, reconcile the adapters.

The faces (cli, daemon, api) drive this; it drives the pure engine and the I/O edges. Each
evaluation works on one immutable ``Snapshot`` and yields one reason sentence per domain,
which is logged and audited.

Order per domain: read every adapter (the live records and the ownership marker), adopt a
newer marker written by a coordinator that shares no store with us, decide, record the
decision with a compare-and-set on the epoch, then plan → apply (fenced) → verify, writing
the audit log before and after each change.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from failover import engine, health
from failover.adapters.abc import Adapter, Desired, Live, sort_addresses
from failover.errors import AdapterError, FailoverError, LostRace, StoreError
from failover.model import (
    AuditEntry,
    Decision,
    DomainState,
    Override,
    ProbeResult,
    RegionHealth,
    Status,
    Streak,
    StreakKey,
)
from failover.policy import Policy
from failover.store.abc import Store

log = logging.getLogger("failover")

Listener = Callable[[AuditEntry], None]


@dataclass(frozen=True)
class Snapshot:
    now: float
    gateways: dict[str, dict[str, tuple[Status, str]]]  # domain -> gateway -> (status, reason)
    health: dict[str, dict[str, RegionHealth]]  # domain -> region -> verdict (quorum-merged)
    overrides: dict[str, Override]
    drained: frozenset[str]


@dataclass(frozen=True)
class AdapterOutcome:
    adapter: str
    action: str  # noop | planned | applied | skipped | lost_race | error
    detail: str
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainOutcome:
    decision: Decision
    adapters: list[AdapterOutcome] = field(default_factory=list)


class Coordinator:
    def __init__(
        self,
        policy: Policy,
        store: Store,
        adapters: Mapping[str, Sequence[Adapter]],
        *,
        clock: Callable[[], float] = time.time,
        persist: bool = True,
        targets: Iterable[StreakKey] | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.adapters = {d.name: list(adapters.get(d.name, ())) for d in policy.domains}
        self.observer = policy.observer
        self.clock = clock
        self.persist = persist
        self.listeners: list[Listener] = []
        self._lock = threading.RLock()  # guards the in-memory streaks; held briefly, never across I/O
        self._evaluating = threading.Lock()  # one evaluation at a time (daemon, API, reconcile)
        self.decided: dict[str, DomainState] = {}  # the latest recorded decision per domain
        self._unflushed: dict[StreakKey, Streak] = {}
        self._streaks: dict[StreakKey, Streak] = store.get_streaks(self.observer)
        if targets is not None:  # a check removed or renamed in the policy must not keep a gateway down
            wanted = set(targets)
            self._streaks = {k: v for k, v in self._streaks.items() if k in wanted}
        self._own_health: dict[tuple[str, str], RegionHealth] = store.get_region_health(self.observer)

    # -- audit and events --------------------------------------------------------------------
    def audit(self, kind: str, domain: str | None, detail: str, **data: object) -> None:
        entry = AuditEntry(self.clock(), kind, domain, detail, self.observer, dict(data))
        if self.persist:
            self.store.audit(entry)
        for listener in self.listeners:
            try:
                listener(entry)
            except Exception:  # a listener (alerts, metrics) must never stop a failover
                log.exception("listener failed on %s", kind)

    # -- observations ------------------------------------------------------------------------
    def streak(self, key: StreakKey) -> Streak:
        return self._streaks.get(key, Streak())

    def record(self, results: Mapping[StreakKey, ProbeResult], now: float | None = None, flush: bool = True) -> bool:
        """Advance rise/fall state with new results; True when a verdict changed.

        With ``flush=False`` (the daemon's event loop) nothing touches the store here: the
        new streaks wait for ``flush()``, which the next evaluation runs in a worker thread."""
        now = self.clock() if now is None else now
        rules = self.policy.health
        changed: dict[StreakKey, Streak] = {}
        warnings: list[tuple[StreakKey, str]] = []
        moved = False
        with self._lock:
            for key, result in results.items():
                before = self.streak(key)
                after = health.advance(before, result, rules.rise, rules.fall, now)
                if after.status is not before.status:
                    moved = True
                    log.info(
                        "%s %s %s: %s -> %s (%s)",
                        key.domain,
                        key.gateway,
                        key.check,
                        before.status,
                        after.status,
                        result.reason,
                    )
                if after.warning and after.warning != before.warning:
                    warnings.append((key, after.warning))
                changed[key] = after
            self._streaks.update(changed)
            self._unflushed.update(changed)
        for key, warning in warnings:
            self.audit("warning", key.domain, warning, gateway=key.gateway)
        if flush:
            self.flush()
        return moved

    def flush(self) -> None:
        """Write the streaks recorded since the last flush (cron runs keep counting across runs)."""
        with self._lock:
            pending, self._unflushed = self._unflushed, {}
        if self.persist and pending:
            self.store.put_streaks(self.observer, pending)

    def gateway_statuses(self, domain: str) -> dict[str, Status]:
        """Every gateway's current verdict for the domain, from memory (cheap: for the proxy)."""
        by_gateway: dict[str, list[Streak]] = {}
        with self._lock:
            for key, streak in self._streaks.items():
                if key.domain == domain:
                    by_gateway.setdefault(key.gateway, []).append(streak)
        return {gw: health.gateway_status(streaks) for gw, streaks in by_gateway.items()}

    def up_now(self, domain: str, region: str) -> int:
        """Gateways of the region that are UP and passed their latest probe of every check
        (stricter than the verdict: for operator actions, one fresh failure counts)."""
        count = 0
        with self._lock:
            for gw in self.policy.region(region).gateways:
                checks = [s for k, s in self._streaks.items() if k.domain == domain and k.gateway == gw.name]
                if checks and all(s.status is Status.UP and s.failures == 0 for s in checks):
                    count += 1
        return count

    def unknown_targets(self) -> list[StreakKey]:
        with self._lock:
            return [k for k, s in self._streaks.items() if s.status is Status.UNKNOWN]

    def snapshot(self, now: float | None = None) -> Snapshot:
        now = self.clock() if now is None else now
        with self._lock:
            by_target: dict[tuple[str, str], list[Streak]] = {}
            for target, streak in self._streaks.items():
                by_target.setdefault((target.domain, target.gateway), []).append(streak)
            gateways: dict[str, dict[str, tuple[Status, str]]] = {}
            own: dict[tuple[str, str], RegionHealth] = {}
            for domain in self.policy.domains:
                per_gateway: dict[str, tuple[Status, str]] = {}
                for region in self.policy.regions:
                    for gw in region.gateways:
                        checks = by_target.get((domain.name, gw.name), [])
                        status = health.gateway_status(checks) if checks else Status.UNKNOWN
                        worst = next((s.reason for s in checks if s.status is Status.DOWN), None)
                        per_gateway[gw.name] = (status, worst or (checks[0].reason if checks else "not probed yet"))
                    own[(domain.name, region.name)] = health.region_health(
                        region.name,
                        {gw.name: per_gateway[gw.name] for gw in region.gateways},
                        self.policy.health.min_healthy_gateways,
                        self._own_health.get((domain.name, region.name)),
                        now,
                    )
                gateways[domain.name] = per_gateway
            self._own_health = own
        # store I/O outside the streak lock: probes keep recording meanwhile
        if self.persist:
            self.store.put_region_health(self.observer, own, now)
        views = self.store.all_region_health(now - self._freshness()) if self.persist else {}
        views[self.observer] = own
        merged: dict[str, dict[str, RegionHealth]] = {}
        for domain in self.policy.domains:
            merged[domain.name] = {}
            for region in self.policy.regions:
                key = (domain.name, region.name)
                votes = {obs: v[key] for obs, v in views.items() if key in v}
                merged[domain.name][region.name] = health.quorum_verdict(votes)
        drained = frozenset(self.store.drains())
        return Snapshot(now, gateways, merged, self.store.overrides(), drained)

    def _freshness(self) -> float:
        longest = max(c.interval for d in self.policy.domains for c in d.checks)
        return 3 * longest * max(self.policy.health.rise, self.policy.health.fall) + 30.0

    # -- decisions ---------------------------------------------------------------------------
    def evaluate(self, apply: bool = True, domains: Sequence[str] | None = None) -> list[DomainOutcome]:
        """Decide every domain and, when ``apply``, reconcile its adapters. Never raises for one
        domain's adapter failure: it is audited and reported in the outcome. Probe results keep
        being recorded meanwhile: adapter I/O never holds the streak lock."""
        with self._evaluating:
            self.flush()
            now = self.clock()
            self._expire_overrides(now)
            snap = self.snapshot(now)
            names = [d.name for d in self.policy.domains if domains is None or d.name in domains]
            if len(names) <= 1:
                return [self._evaluate_domain(name, snap, apply) for name in names]
            # Domains are independent (own adapters, own compare-and-set): one waiting on its
            # provider (Route 53 INSYNC, a Cloud DNS change) must not hold the others' failover.
            # Each task runs in a copy of the caller's context, so what an operation collects
            # (the alert for an operator's promote) still sees every domain's entries.
            with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="evaluate") as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, self._evaluate_domain, name, snap, apply)
                    for name in names
                ]
                return [future.result() for future in futures]

    def _expire_overrides(self, now: float) -> None:
        if not self.persist:
            return
        for key, override in self.store.overrides().items():
            if not override.active(now) and self.store.clear_override(key, expect=override) is not None:
                self.audit(
                    "release",
                    None if key == "*" else key,
                    f"override to {override.region} by {override.by} expired",
                    region=override.region,
                )

    def _evaluate_domain(self, domain: str, snap: Snapshot, apply: bool, attempts: int = 3) -> DomainOutcome:
        reads: list[tuple[Adapter, Live | AdapterError]] = []
        for adapter in self.adapters[domain]:
            try:
                reads.append((adapter, adapter.read()))
            except AdapterError as exc:
                reads.append((adapter, exc))
            except Exception as exc:  # one broken adapter must not stop the other domains
                log.exception("%s: %s read failed unexpectedly", domain, adapter.name)
                reads.append((adapter, AdapterError(f"{adapter.name}: read failed: {exc!r}")))
        stored = self.store.get_state(domain)
        state = self._adopt_marker(domain, stored, [r for _, r in reads if isinstance(r, Live)])
        # Operator intent is read now, not with the snapshot: a promote or drain recorded while
        # an earlier domain was being applied must win here.
        overrides = self.store.overrides() if self.persist else snap.overrides
        drained = frozenset(self.store.drains()) if self.persist else snap.drained
        decision = engine.decide(
            domain,
            self.policy.regions,
            state,
            snap.health[domain],
            drained,
            engine.effective_override(overrides, domain, snap.now),
            self.policy.election,
            snap.now,
        )
        if self.persist and not self._record_decision(decision, state):
            if attempts > 1:  # another coordinator recorded first: re-read and decide again
                return self._evaluate_domain(domain, snap, apply, attempts - 1)
            raise StoreError(f"{domain}: the stored epoch keeps moving under us; not acting this round")
        log.info("%s: %s", domain, decision.reason)
        if self.persist:
            self.decided[domain] = decision.state
        outcome = DomainOutcome(decision)
        primary = decision.state.primary
        if primary is None:
            return outcome
        if apply and not self.store.is_leader(self.observer, self._freshness()):
            detail = "not the leader: another coordinator applies changes"
            outcome.adapters.extend(AdapterOutcome(a.name, "skipped", detail) for a, _ in reads)
            return outcome
        addresses = self.publishable(domain, primary, snap, decision.kind == "override")
        healthy = {r.name: self.publishable(domain, r.name, snap) for r in self.policy.regions}
        for adapter, live in reads:
            outcome.adapters.append(self._reconcile(adapter, live, decision.state, addresses, healthy, apply))
        return outcome

    def publishable(self, domain: str, region: str, snap: Snapshot, forced: bool = False) -> tuple[str, ...]:
        """The region's gateways that are up for the domain; all of them when forced there.
        None for a region no longer in the policy (a stored primary that was removed)."""
        found = [r for r in self.policy.regions if r.name == region]
        if not found:
            return ()
        gateways = found[0].gateways
        up = [gw.address for gw in gateways if snap.gateways[domain][gw.name][0] is Status.UP]
        if not up and forced:
            up = [gw.address for gw in gateways]
        return sort_addresses(up)

    def _adopt_marker(self, domain: str, state: DomainState | None, lives: list[Live]) -> DomainState | None:
        """A coordinator that shares no store with us may have decided later: its marker wins,
        and our hold-down and budget count from its ``at``."""
        markers = [live.marker for live in lives if live.marker is not None]
        if not markers:
            return state
        newest = max(markers, key=lambda m: m.epoch)
        current = state or DomainState(domain=domain)
        if newest.epoch < current.epoch or (newest.epoch == current.epoch and newest.primary == current.primary):
            return state
        if newest.by == self.observer and newest.epoch == current.epoch:
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
        if self.persist:
            if not self.store.put_state(adopted, state.epoch if state else None):
                return self.store.get_state(domain)  # someone recorded first: decide on theirs
            self.audit("adopted", domain, adopted.reason, epoch=newest.epoch, primary=newest.primary)
        return adopted

    def _record_decision(self, decision: Decision, base: DomainState | None) -> bool:
        """Compare-and-set on the epoch the decision was based on; False: someone else won."""
        new = decision.state
        if base is not None and (base.primary, base.secondary, base.epoch, base.reason) == (
            new.primary,
            new.secondary,
            new.epoch,
            new.reason,
        ):
            return True
        if not self.store.put_state(new, base.epoch if base else None):
            return False
        if not decision.changed and decision.kind in ("hold", "fail_static", "waiting"):
            # why traffic did NOT move is what an operator looks for in history
            self.audit(decision.kind, new.domain, decision.reason, primary=new.primary, epoch=new.epoch)
        if decision.changed:
            self.audit(
                decision.kind,
                new.domain,
                decision.reason,
                primary=new.primary,
                secondary=new.secondary,
                epoch=new.epoch,
                previous=base.primary if base else None,
            )
        return True

    # -- traffic -----------------------------------------------------------------------------
    def _already_applied(self, adapter: Adapter, desired: Desired) -> bool:
        """After a lost race: re-read; True when what is live now is what we wanted."""
        try:
            return adapter.plan(adapter.read(), desired).noop
        except FailoverError:
            return False

    def _reconcile(
        self,
        adapter: Adapter,
        live: Live | AdapterError,
        state: DomainState,
        addresses: tuple[str, ...],
        healthy: dict[str, tuple[str, ...]],
        apply: bool,
    ) -> AdapterOutcome:
        domain = state.domain
        if isinstance(live, AdapterError):
            self.audit("error", domain, str(live), adapter=adapter.name)
            return AdapterOutcome(adapter.name, "error", str(live))
        if not addresses:
            detail = f"no healthy gateway in {state.primary}: leaving the live records as they are"
            return AdapterOutcome(adapter.name, "skipped", detail)
        ttl = int(getattr(adapter, "ttl", 30))
        desired = Desired(
            domain, state.primary or "", state.epoch, addresses, ttl, self.observer, int(self.clock()), healthy
        )
        try:
            plan = adapter.plan(live, desired)
        except LostRace as exc:
            self.audit("lost_race", domain, str(exc), adapter=adapter.name)
            return AdapterOutcome(adapter.name, "lost_race", str(exc))
        if plan.noop:
            return AdapterOutcome(adapter.name, "noop", "in sync")
        if not apply:
            return AdapterOutcome(adapter.name, "planned", "would change", plan.changes)
        self.audit("applying", domain, "; ".join(plan.changes), adapter=adapter.name, epoch=state.epoch)
        started = time.monotonic()
        try:
            adapter.apply(plan)
            adapter.verify(desired)
        except LostRace as exc:
            self.audit("lost_race", domain, str(exc), adapter=adapter.name)
            if self._already_applied(adapter, desired):
                # the other writer (the daemon, beside an operator's command) published this very decision
                return AdapterOutcome(adapter.name, "noop", "another coordinator applied the same decision first")
            return AdapterOutcome(adapter.name, "lost_race", str(exc), plan.changes)
        except FailoverError as exc:
            self.audit("error", domain, str(exc), adapter=adapter.name)
            return AdapterOutcome(adapter.name, "error", str(exc), plan.changes)
        took = time.monotonic() - started
        detail = f"applied and verified in {took * 1000:.0f}ms"
        self.audit(
            "applied",
            domain,
            f"{adapter.name}: " + "; ".join(plan.changes),
            adapter=adapter.name,
            epoch=state.epoch,
            seconds=round(took, 4),
        )
        return AdapterOutcome(adapter.name, "applied", detail, plan.changes)
