"""This observer's measurements: rise/fall streaks per target, and the region verdicts they give.

Probe results arrive from the event loop (``record(..., flush=False)``: no store I/O there)
and from cron runs. ``snapshot()`` only reads: it merges this observer's verdicts, computed in
memory, with the other observers' fresh reports from the store. The evaluation publishes this
observer's verdicts once (``publish``) before it takes its snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

from failover import events as ev
from failover import health
from failover.coordinator._context import Context
from failover.errors import StoreError
from failover.model import ProbeResult, RegionHealth, Snapshot, Status, Streak, StreakKey

log = logging.getLogger("failover")

Own = dict[tuple[str, str], RegionHealth]  # (domain, region) -> this observer's verdict


class Observations:
    def __init__(self, ctx: Context, targets: Iterable[StreakKey] | None = None) -> None:
        self.ctx = ctx
        self._lock = threading.RLock()  # guards the in-memory streaks; held briefly, never across I/O
        self._unflushed: dict[StreakKey, Streak] = {}
        self._flushed_status: dict[StreakKey, Status] = {}  # what the store holds, for ``flush(moved_only=True)``
        self._gateways: dict[str, dict[str, tuple[Status, str]]] = {}  # the last own view, per domain
        self._members: tuple[tuple[str, ...], ...] = ()  # the regions' gateways that view was made of
        self._moved: set[str] = set()  # domains with a verdict moved since the last own view
        self._warnings: list[tuple[StreakKey, ProbeResult]] = []  # told at the next flush, off the loop
        try:
            self._streaks: dict[StreakKey, Streak] = ctx.store.get_streaks(ctx.observer)
            self._own: Own = ctx.store.get_region_health(ctx.observer)
        except StoreError as exc:  # a shared store down at start: probe from scratch, act on nothing
            log.warning("starting without the stored probe results (%s); counting rise/fall afresh", exc)
            self._streaks, self._own = {}, {}
        if targets is not None:  # a check removed or renamed in the policy must not keep a gateway down
            wanted = set(targets)
            self._streaks = {k: v for k, v in self._streaks.items() if k in wanted}
        self._published: dict[tuple[str, str], tuple[Status, int, int]] | None = None
        self._published_at = float("-inf")

    # -- recording ---------------------------------------------------------------------------
    def streak(self, key: StreakKey) -> Streak:
        return self._streaks.get(key, Streak())

    def record(self, results: Mapping[StreakKey, ProbeResult], now: float | None = None, flush: bool = True) -> bool:
        """Advance rise/fall state with new results; True when a verdict changed.

        With ``flush=False`` (the daemon's event loop) nothing touches the store here: the
        new streaks wait for ``flush()``, which the next evaluation runs in a worker thread."""
        now = self.ctx.clock() if now is None else now
        rules = self.ctx.policy.health
        changed: dict[StreakKey, Streak] = {}
        warnings: list[tuple[StreakKey, ProbeResult]] = []
        moved = False
        with self._lock:
            for key, result in results.items():
                before = self.streak(key)
                after = health.advance(before, result, rules.rise, rules.fall, now)
                if after.status is not before.status:
                    moved = True
                    self._moved.add(key.domain)
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
                    warnings.append((key, result))
                changed[key] = after
            self._streaks.update(changed)
            self._unflushed.update(changed)
        if warnings:
            with self._lock:
                self._warnings.extend(warnings)
        if flush:
            self.flush()
        return moved

    def _warn(self, key: StreakKey, result: ProbeResult) -> None:
        where = {"domain": key.domain, "gateway": key.gateway, "check": key.check, "detail": result.warning or ""}
        if result.cert_days_left is not None:
            self.ctx.emit(ev.CertificateExpiring, days_left=result.cert_days_left, **where)
        else:
            self.ctx.emit(ev.ProbeWarning, **where)

    def flush(self, moved_only: bool = False) -> None:
        """Write the streaks recorded since the last flush (cron runs keep counting across runs).

        ``moved_only`` (the daemon's evaluations) writes only the streaks whose status moved:
        at thousands of targets, writing every count each time cost more than the evaluation;
        the rest wait for the next full flush (when the daemon stops)."""
        with self._lock:
            if moved_only:
                flushed = self._flushed_status
                pending = {k: v for k, v in self._unflushed.items() if flushed.get(k) is not v.status}
                for key in pending:
                    del self._unflushed[key]
            else:
                pending, self._unflushed = self._unflushed, {}
            warnings, self._warnings = self._warnings, []
        if self.ctx.persist and pending:
            try:
                self.ctx.store.put_streaks(self.ctx.observer, pending)
            except BaseException:
                with self._lock:  # written next time, unless a newer result replaced it meanwhile
                    for key, streak in pending.items():
                        self._unflushed.setdefault(key, streak)
                raise
            with self._lock:
                self._flushed_status.update((k, v.status) for k, v in pending.items())
        for key, result in warnings:  # audited in the store: never on the daemon's event loop
            self._warn(key, result)

    # -- reading (memory only) ---------------------------------------------------------------
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
            for gw in self.ctx.policy.region(region).gateways:
                checks = [s for k, s in self._streaks.items() if k.domain == domain and k.gateway == gw.name]
                if checks and all(s.status is Status.UP and s.failures == 0 for s in checks):
                    count += 1
        return count

    def unknown_targets(self) -> list[StreakKey]:
        with self._lock:
            return [k for k, s in self._streaks.items() if s.status is Status.UNKNOWN]

    def own_view(self, now: float, incremental: bool = False) -> tuple[dict[str, dict[str, tuple[Status, str]]], Own]:
        """Gateway verdicts and this observer's region verdicts, from the streaks in memory.

        ``incremental`` (the daemon's evaluations) works out again only the domains where a
        verdict moved since the last view; the others keep it, reasons included (a gateway's
        reason then names an earlier probe of the same verdict). With thousands of targets a
        full pass costs tens of milliseconds of the GIL, taken from the probes on the loop."""
        policy = self.ctx.policy
        with self._lock:
            todo: set[str] | None = None
            made_of = tuple(tuple(gw.name for gw in region.gateways) for region in policy.regions)
            if incremental and made_of == self._members:  # and discovery moved nobody
                todo = self._moved | {d.name for d in policy.domains if d.name not in self._gateways}
            self._moved = set()
            by_target: dict[tuple[str, str], list[Streak]] = {}
            for target, streak in self._streaks.items():
                if todo is None or target.domain in todo:
                    by_target.setdefault((target.domain, target.gateway), []).append(streak)
            gateways = {} if todo is None else dict(self._gateways)
            own: Own = {} if todo is None else dict(self._own)
            for domain in policy.domains:
                if todo is not None and domain.name not in todo:
                    continue
                per_gateway: dict[str, tuple[Status, str]] = {}
                for region in policy.regions:
                    members = region.gateways  # once: discovery may change the set meanwhile
                    for gw in members:
                        checks = by_target.get((domain.name, gw.name), [])
                        status = health.gateway_status(checks) if checks else Status.UNKNOWN
                        worst = next((s.reason for s in checks if s.status is Status.DOWN), None)
                        per_gateway[gw.name] = (status, worst or (checks[0].reason if checks else "not probed yet"))
                    own[(domain.name, region.name)] = (
                        health.region_health(
                            region.name,
                            {gw.name: per_gateway[gw.name] for gw in members},
                            policy.health.min_healthy_gateways,
                            self._own.get((domain.name, region.name)),
                            now,
                        )
                        if members
                        else self._nothing_discovered(domain.name, region.name, now)
                    )
                gateways[domain.name] = per_gateway
            self._own = own  # in memory only: keeps each verdict's ``since``
            self._gateways, self._members = gateways, made_of
        return {domain: dict(per_gateway) for domain, per_gateway in gateways.items()}, own

    def _nothing_discovered(self, domain: str, region: str, now: float) -> RegionHealth:
        """A region whose ``gateways_from`` has not answered yet: unknown, never "0/0 down"
        (discovery raised DiscoveryFailed about it)."""
        before = self._own.get((domain, region))
        since = before.since if before is not None and before.status is Status.UNKNOWN else now
        return RegionHealth(region, Status.UNKNOWN, 0, 0, since, "no gateway discovered yet")

    def forget(self, gateways: Iterable[str]) -> None:
        """Drop the streaks of gateways that left (discovery): one that comes back starts afresh."""
        gone = set(gateways)
        with self._lock:
            self._streaks = {k: v for k, v in self._streaks.items() if k.gateway not in gone}
            self._unflushed = {k: v for k, v in self._unflushed.items() if k.gateway not in gone}
            self._flushed_status = {k: v for k, v in self._flushed_status.items() if k.gateway not in gone}

    def voters(self) -> list[str] | None:
        """The configured voters, with a shared store or an explicit ``observers`` list; None
        for one machine's sqlite store, where the observers that report are the vote."""
        policy = self.ctx.policy
        if policy.state.backend == "etcd" or policy.observers is not None:
            return policy.voters
        return None

    # -- the store ---------------------------------------------------------------------------
    def publish(self, own: Own, now: float) -> None:
        """This observer's vote: written when a verdict changed, and refreshed well inside the
        freshness window otherwise (other coordinators wake on every write: no idle churn)."""
        if not self.ctx.persist:
            return
        verdicts = {key: (v.status, v.up, v.total) for key, v in own.items()}
        if verdicts == self._published and now - self._published_at < self.ctx.freshness() / 3:
            return
        self.ctx.store.put_region_health(self.ctx.observer, own, now)
        self._published, self._published_at = verdicts, now

    def snapshot(self, now: float | None = None, publish: bool = False, incremental: bool = False) -> Snapshot:
        """One immutable view: this observer's verdicts merged with the other observers' fresh
        reports. Reads the store; writes only with ``publish`` (the evaluation's one write).
        ``incremental``: see ``own_view``."""
        ctx = self.ctx
        now = ctx.clock() if now is None else now
        gateways, own = self.own_view(now, incremental)
        if publish:
            self.publish(own, now)
        # reads only (also for plan and status); our own report is the one in memory
        views = ctx.store.all_region_health(now - ctx.freshness(), others_than=ctx.observer)
        views[ctx.observer] = own
        voters = self.voters()
        merged: dict[str, dict[str, RegionHealth]] = {}
        for domain in ctx.policy.domains:
            merged[domain.name] = {}
            for region in ctx.policy.regions:
                key = (domain.name, region.name)
                votes = {obs: v[key] for obs, v in views.items() if key in v}
                if voters is None:  # one machine's store: whoever reports is the vote
                    merged[domain.name][region.name] = health.quorum_verdict(votes)
                else:
                    merged[domain.name][region.name] = health.voters_verdict(votes, voters, region.name)
        ballots = {
            d.name: {
                r.name: {o: v[(d.name, r.name)].status for o, v in views.items() if (d.name, r.name) in v}
                for r in ctx.policy.regions
            }
            for d in ctx.policy.domains
        }
        if voters is not None:  # what gets published follows the voters too, gateway by gateway
            for region in ctx.policy.regions:
                names = {gw.name for gw in region.gateways}
                for domain in ctx.policy.domains:
                    key = (domain.name, region.name)
                    reports = {obs: v[key] for obs, v in views.items() if key in v}
                    own_here = {g: gateways[domain.name][g] for g in names if g in gateways[domain.name]}
                    gateways[domain.name].update(health.voters_gateways(own_here, reports, voters))
        drained = frozenset(ctx.store.drains())
        reporting = tuple(sorted(o for o in views if voters is None or o in voters))
        overrides = ctx.store.overrides()
        return Snapshot(now, gateways, merged, overrides, drained, ballots, tuple(voters or ()), reporting)
