"""One coordinator cycle: take one snapshot, decide, reconcile the adapters.

The faces (cli, daemon, api) drive this; it drives the pure engine and the I/O edges through
three parts with one job each:

* ``Observations``: probe results, rise/fall streaks, this observer's verdicts, the snapshot;
* ``Decisions``: marker adoption, the engine, compare-and-set on the epoch;
* ``Reconciler``: plan → apply (fenced) → verify per adapter.

What happens is published as typed events (``failover.events``) on ``events``: the audit log
records each one first (a store failure stops the evaluation), then metrics and alerts hear it.
Each evaluation works on one immutable ``Snapshot`` and yields one reason sentence per domain,
which is logged and audited.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from failover import events as ev
from failover.adapters.abc import Adapter, Live
from failover.coordinator._context import Context, E
from failover.coordinator.audit import AuditLog
from failover.coordinator.decisions import Decisions
from failover.coordinator.observations import Observations
from failover.coordinator.reconcile import Reconciler
from failover.errors import AdapterError, StoreError
from failover.model import (
    AdapterAction,
    AdapterOutcome,
    DecisionKind,
    DomainOutcome,
    DomainState,
    ProbeResult,
    Snapshot,
    Status,
    Streak,
    StreakKey,
)
from failover.policy import Policy
from failover.store.abc import Store

log = logging.getLogger("failover")


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
        self.ctx = Context(policy, store, clock, persist)
        self.ctx.bus.subscribe(AuditLog(lambda: self.ctx.store, persist), required=True)
        self.adapters = {d.name: list(adapters.get(d.name, ())) for d in policy.domains}
        self.observations = Observations(self.ctx, targets)
        self.decisions = Decisions(self.ctx)
        self.reconciler = Reconciler(self.ctx)
        self._evaluating = threading.Lock()  # one evaluation at a time (daemon, API, reconcile)
        self._verdicts: dict[tuple[str, str], Status] = {}  # last merged verdicts, for RegionDown/Up
        self._stored: dict[str, DomainState | None] = {}  # what the store held, before our first decision
        self._quorum: bool | None = None  # the voters had a majority of fresh reports last time
        self._token: int | None = None  # our fencing token when we last campaigned
        self._failing_since: float | None = None  # leading, and every adapter change failing since
        self._stand_down_until = float("-inf")  # no campaign for the leadership before this
        self.last_snapshot: Snapshot | None = None  # the last evaluation's: metrics and alerts reuse it

    # -- what the faces use ------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        return self.ctx.policy

    @property
    def observer(self) -> str:
        return self.ctx.observer

    @property
    def clock(self) -> Callable[[], float]:
        return self.ctx.clock

    @property
    def persist(self) -> bool:
        return self.ctx.persist

    @property
    def store(self) -> Store:
        return self.ctx.store

    @store.setter
    def store(self, store: Store) -> None:  # the daemon's metrics wrap it to count errors
        self.ctx.store = store

    @property
    def events(self) -> ev.EventBus:
        return self.ctx.bus

    def emit(self, cls: type[E], **fields: object) -> E:
        return self.ctx.emit(cls, **fields)

    def record(self, results: Mapping[StreakKey, ProbeResult], now: float | None = None, flush: bool = True) -> bool:
        return self.observations.record(results, now, flush)

    def flush(self) -> None:
        self.observations.flush()

    def forget(self, gateways: Iterable[str]) -> None:
        """Gateways that discovery retired: their streaks go (one that comes back starts afresh)."""
        self.observations.forget(gateways)

    def streak(self, key: StreakKey) -> Streak:
        return self.observations.streak(key)

    def gateway_statuses(self, domain: str) -> dict[str, Status]:
        return self.observations.gateway_statuses(domain)

    def up_now(self, domain: str, region: str) -> int:
        return self.observations.up_now(domain, region)

    def unknown_targets(self) -> list[StreakKey]:
        return self.observations.unknown_targets()

    def snapshot(self, now: float | None = None) -> Snapshot:
        """Read-only: safe for ``status`` and ``GET /v1/status``."""
        return self.observations.snapshot(now)

    def decided_state(self, domain: str) -> DomainState | None:
        """The latest decision this process recorded; before the first one, what the store held
        (read once: the proxy asks on the event loop, at every verdict change)."""
        latest = self.decisions.latest(domain)
        if latest is not None:
            return latest
        if domain not in self._stored:
            self._stored[domain] = self.ctx.store.get_state(domain)
        return self._stored[domain]

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(
        self, apply: bool = True, domains: Collection[str] | None = None, incremental: bool = False
    ) -> list[DomainOutcome]:
        """Decide every domain and, when ``apply``, reconcile its adapters. Never raises for one
        domain's adapter failure: it is audited and reported in the outcome. Probe results keep
        being recorded meanwhile: adapter I/O never holds the streak lock.

        ``domains``: decide only these (the daemon passes the domains whose verdicts moved).
        ``incremental`` (the daemon): the snapshot works out again only the domains whose
        verdicts moved, and only the streaks whose status moved are written (the rest when the
        daemon stops); a cron run writes every count, for the next run to continue from."""
        with self._evaluating:
            self.observations.flush(moved_only=incremental)
            now = self.clock()
            self.decisions.expire_overrides(now)
            snap = self.observations.snapshot(now, publish=True, incremental=incremental)
            self.last_snapshot = snap
            self._tell_quorum(snap)
            self._tell_region_changes(snap)
            if apply and self.store.leading() is None:
                self.campaign()  # a cron run, or a daemon between its renewals
            names = [d.name for d in self.policy.domains if domains is None or d.name in domains]
            if len(names) <= 1 or not any(self.adapters[name] for name in names):  # no provider to wait on
                outcomes = [self._evaluate_domain(name, snap, apply) for name in names]
                self._stand_down_if_stuck(outcomes, now)
                return outcomes
            # Domains are independent (own adapters, own compare-and-set): one waiting on its
            # provider (Route 53 INSYNC, a Cloud DNS change) must not hold the others' failover.
            # Each task runs in a copy of the caller's context, so what an operation collects
            # (the alert for an operator's promote) still sees every domain's events.
            with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="evaluate") as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, self._evaluate_domain, name, snap, apply)
                    for name in names
                ]
                outcomes = [future.result() for future in futures]
            self._stand_down_if_stuck(outcomes, now)
            return outcomes

    def _stand_down_if_stuck(self, outcomes: Sequence[DomainOutcome], now: float) -> None:
        """A leader that cannot reach its providers (cut off from DNS, not from etcd) would hold
        every change: after a lease TTL of nothing but failed changes it hands the leadership to
        a coordinator that may reach them, and keeps out of the race for three TTLs."""
        if self.policy.state.backend != "etcd" or self.store.leading() is None:
            self._failing_since = None
            return
        actions = [a.action for o in outcomes for a in o.adapters]
        if AdapterAction.ERROR not in actions or any(a in (AdapterAction.APPLIED, AdapterAction.NOOP) for a in actions):
            self._failing_since = None
            return
        self._failing_since = self._failing_since if self._failing_since is not None else now
        ttl = self.policy.state.ttl
        if now - self._failing_since < ttl:
            return
        log.warning("%s: every traffic change failed for %.0fs: handing the leadership over", self.observer, ttl)
        self.store.resign()
        self._stand_down_until = now + 3 * ttl
        self._failing_since = None
        self.campaign()

    def _tell_quorum(self, snap: Snapshot) -> None:
        if not snap.voters:
            return
        needed = len(snap.voters) // 2 + 1
        fine = len(snap.reporting) >= needed
        if fine == self._quorum:
            return
        before, self._quorum = self._quorum, fine
        if not fine:
            self.emit(ev.QuorumLost, at=snap.now, reporting=snap.reporting, voters=snap.voters, needed=needed)
        elif before is False:
            self.emit(ev.QuorumRegained, at=snap.now, reporting=snap.reporting, voters=snap.voters)

    def campaign(self) -> int | None:
        """Renew this process's lease and take or keep the leadership; tell when it changes.
        A leader that stood down (its adapters kept failing) only renews for a while."""
        take = self.clock() >= self._stand_down_until
        token = self.store.campaign(self.observer, take=take)
        if token != self._token:
            previous, self._token = self._token, token
            if token is not None or previous is not None:
                self.emit(ev.LeaderChanged, leader=self.observer if token is not None else None, token=token)
        return token

    def _tell_region_changes(self, snap: Snapshot) -> None:
        for domain, regions in snap.health.items():
            for region, verdict in regions.items():
                before = self._verdicts.get((domain, region))
                self._verdicts[(domain, region)] = verdict.status
                if verdict.status is Status.DOWN and before is not Status.DOWN:
                    self.emit(ev.RegionDown, at=snap.now, domain=domain, region=region, reason=verdict.reason)
                elif verdict.status is Status.UP and before is Status.DOWN:
                    self.emit(ev.RegionUp, at=snap.now, domain=domain, region=region, reason=verdict.reason)

    def _read(self, domain: str) -> list[tuple[Adapter, Live | AdapterError]]:
        reads: list[tuple[Adapter, Live | AdapterError]] = []
        for adapter in self.adapters[domain]:
            try:
                reads.append((adapter, adapter.read()))
            except AdapterError as exc:
                reads.append((adapter, exc))
            except Exception as exc:  # one broken adapter must not stop the other domains
                log.exception("%s: %s read failed unexpectedly", domain, adapter.name)
                reads.append((adapter, AdapterError(f"{adapter.name}: read failed: {exc!r}")))
        return reads

    def _evaluate_domain(self, domain: str, snap: Snapshot, apply: bool, attempts: int = 3) -> DomainOutcome:
        reads = self._read(domain)
        decision = self.decisions.decide(domain, snap, [r for _, r in reads if isinstance(r, Live)])
        if decision is None:
            if attempts > 1:  # another coordinator recorded first: re-read and decide again
                return self._evaluate_domain(domain, snap, apply, attempts - 1)
            raise StoreError(f"{domain}: the stored epoch keeps moving under us; not acting this round")
        log.info("%s: %s", domain, decision.reason)
        outcome = DomainOutcome(decision)
        primary = decision.state.primary
        if primary is None:
            return outcome
        publishable = self.reconciler.publishable
        addresses = publishable(domain, primary, snap, decision.kind is DecisionKind.OVERRIDE)
        healthy = {r.name: publishable(domain, r.name, snap) for r in self.policy.regions}
        for adapter, live in reads:
            # asked again before each adapter: an apply may outlast the lease's local deadline
            token = self.store.leading() if apply else 0
            if token is None:
                detail = "not the leader: another coordinator applies changes"
                outcome.adapters.append(AdapterOutcome(adapter.name, AdapterAction.SKIPPED, detail))
                continue
            state = decision.state
            outcome.adapters.append(self.reconciler.reconcile(adapter, live, state, addresses, healthy, apply, token))
        return outcome
