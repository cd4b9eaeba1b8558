"""``failover explain``: why each domain's primary is where it is, right now.

The answer comes from the engine itself: one snapshot of what the store knows (this observer's
last probes, the other observers' fresh reports, overrides, drains), the engine's decision on
it, and that decision's structured ``Why`` put into plain words with its evidence. Nothing is
probed, recorded or applied, and the DNS markers are not read (a marker written by a
coordinator that shares no store with this one is adopted at the next evaluation, not here).

The JSON shape (``failover explain --json``) is documented in docs/troubleshooting.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from failover import engine
from failover.coordinator import Coordinator
from failover.model import (
    Decision,
    DomainState,
    Drain,
    Override,
    RegionHealth,
    Rule,
    Snapshot,
    Status,
    StreakKey,
    Why,
    iso,
)
from failover.policy import Policy

__all__ = ["explain"]


def clock(ts: float) -> str:
    """HH:MM:SS UTC: what an operator compares with ``date -u``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S UTC")


def explain(coordinator: Coordinator, targets: Iterable[StreakKey], domain: str | None = None) -> dict[str, Any]:
    policy = coordinator.policy
    snap = coordinator.snapshot()
    drains = coordinator.store.drains()
    keys = list(targets)
    names = [policy.domain(domain).name] if domain else [d.name for d in policy.domains]
    domains: dict[str, Any] = {}
    for name in names:
        state = coordinator.store.get_state(name)
        override = engine.effective_override(snap.overrides, name, snap.now)
        decision = engine.decide(
            name, policy.regions, state, snap.health[name], snap.drained, override, policy.election, snap.now
        )
        why = decision.why or Why(Rule.MOVE if decision.changed else Rule.HEALTHY, decision.primary)
        domains[name] = {
            "primary": state.primary if state else None,
            "secondary": state.secondary if state else None,
            "epoch": state.epoch if state else 0,
            "rule": str(why.rule),
            "explanation": _sentence(policy, snap, state, decision, why, override, drains),
            "details": {
                "region": why.region,
                "until": iso(why.until),
                "wait": None if why.wait is None else round(why.wait, 1),
                "used": why.used,
                "limit": why.limit,
            },
            "decision": {
                "kind": str(decision.kind),
                "reason": decision.reason,
                "moves": decision.changed,
                "primary": decision.primary,
            },
            "last_decision": {
                "reason": state.reason if state else None,
                "changed_at": iso(state.changed_at) if state else None,
                "automatic_changes": [iso(t) for t in state.failovers] if state else [],
            },
            "override": _override(override),
            "quorum": _quorum(snap),
            "regions": _regions(coordinator, snap, name, keys, drains),
        }
    return {"service": policy.service, "observer": policy.observer, "at": iso(snap.now), "domains": domains}


def _override(override: Override | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return {
        "region": override.region,
        "by": override.by,
        "reason": override.reason,
        "at": iso(override.at),
        "until": iso(override.until),
        "force": override.force,
    }


def _quorum(snap: Snapshot) -> dict[str, Any] | None:
    """The configured voters and who reports now; None where whoever reports votes (sqlite)."""
    if not snap.voters:
        return None
    return {
        "voters": list(snap.voters),
        "reporting": list(snap.reporting),
        "silent": [v for v in snap.voters if v not in snap.reporting],
        "needed": len(snap.voters) // 2 + 1,
    }


def _regions(
    coordinator: Coordinator, snap: Snapshot, domain: str, keys: list[StreakKey], drains: dict[str, Drain]
) -> dict[str, Any]:
    regions: dict[str, Any] = {}
    for region in coordinator.policy.regions:
        verdict = snap.health[domain][region.name]
        drain = drains.get(region.name)
        gateways: dict[str, Any] = {}
        for gw in region.gateways:
            status, reason = snap.gateways[domain][gw.name]
            checks = []
            for key in keys:
                if key.domain == domain and key.gateway == gw.name:
                    streak = coordinator.streak(key)
                    checks.append(
                        {
                            "check": key.check,
                            "status": str(streak.status),
                            "last": streak.reason,
                            "latency_ms": None if streak.latency is None else round(streak.latency * 1000, 1),
                            "successes": streak.successes,
                            "failures": streak.failures,
                            "since": iso(streak.since),
                        }
                    )
            gateways[gw.name] = {"status": str(status), "reason": reason, "checks": checks}
        regions[region.name] = {
            "priority": region.priority,
            "status": str(verdict.status),
            "reason": verdict.reason,
            "since": iso(verdict.since),
            "drained": None if drain is None else {"by": drain.by, "reason": drain.reason, "at": iso(drain.at)},
            "observers": {o: str(s) for o, s in sorted(snap.votes.get(domain, {}).get(region.name, {}).items())},
            "gateways": gateways,
        }
    return regions


def _sentence(
    policy: Policy,
    snap: Snapshot,
    state: DomainState | None,
    decision: Decision,
    why: Why,
    override: Override | None,
    drains: dict[str, Drain],
) -> str:
    """The rule in plain words; the engine's own sentence stays beside it in ``decision``."""
    health = snap.health[decision.domain]
    primary = state.primary if state else None
    region = why.region or "?"

    def seen(name: str) -> str:
        if name not in health:  # renamed or removed from the policy since it was elected
            return f"{name} (no longer in the policy)"
        if name in drains:
            return f"{name} drained by {drains[name].by} ({drains[name].reason})"
        return f"{name} {health[name].status} ({_brief(health[name])})"

    rule = why.rule
    if rule is Rule.OVERRIDE and override is not None:
        until = f"until {clock(override.until)}" if override.until is not None else "until released"
        pinned = health.get(override.region)
        note = "" if pinned is not None and pinned.healthy else f", although {seen(override.region)}"
        return (
            f"{override.region} is pinned by {override.by} {until}: {override.reason}{note}; "
            f"no automatic rule moves it (failover release ends it)"
        )
    if rule is Rule.HEALTHY:
        return f"{primary} is healthy ({_brief(health[region])}) and no better region waits: nothing to do"
    if rule is Rule.UNDECIDED:
        return f"{primary}'s health is not known ({health[region].reason}): it stays until there is a verdict"
    if rule is Rule.FAILBACK_WAIT:
        return (
            f"{region} is preferred and healthy again; failback waits {why.wait or 0:.0f} more seconds "
            f"(it must stay healthy for {engine.fmt(policy.election.failback_after)})"
        )
    if rule is Rule.FAILBACK_MANUAL:
        return (
            f"{region} is preferred and healthy again, but failback is manual: "
            f"failover promote {region} --reason ... moves it back"
        )
    if rule is Rule.DRAIN:
        drain = drains.get(region)
        by = f" by {drain.by} since {clock(drain.at)}: {drain.reason}" if drain else ""
        return f"{region} is preferred but drained{by}; {primary} serves until failover undrain {region}"
    if rule is Rule.HOLD_DOWN:
        until = clock(why.until) if why.until is not None else "?"
        left = f", {why.until - snap.now:.0f}s from now" if why.until is not None else ""
        return (
            f"{_cause(primary, region, health)}, but the hold-down keeps {primary} until {until}{left} "
            f"(hold_down {engine.fmt(policy.election.hold_down)} after the last automatic change)"
        )
    if rule is Rule.BUDGET:
        return (
            f"{_cause(primary, region, health)}, but the failover budget is spent: {why.used} automatic "
            f"change{'' if why.used == 1 else 's'} in the last hour (max_failovers_per_hour {why.limit}); "
            f"{primary} stays"
        )
    if rule is Rule.NO_QUORUM:
        quorum = _quorum(snap)
        who = ""
        if quorum is not None:
            silent = ", ".join(quorum["silent"]) or "none"
            who = f" ({len(quorum['reporting'])}/{len(quorum['voters'])} voters report, {quorum['needed']} needed; "
            who += f"silent: {silent})"
        return f"no quorum{who}: nothing moves automatically, {primary} stays (fail static)"
    if rule is Rule.FAIL_STATIC:
        others = [r.name for r in policy.regions if r.name != primary]
        every = all(health[o].status is Status.DOWN and o not in drains for o in others)
        because = "every region is down" if every else "no other region can take over: " + "; ".join(map(seen, others))
        return f"{seen(primary or region)}, and {because}: {primary} stays (fail static)"
    if rule is Rule.WAITING:
        return f"nothing is published yet: {decision.reason}"
    # Rule.MOVE: the next evaluation makes the move; the engine's sentence says which
    return f"a move is due at the next evaluation: {decision.reason}"


def _brief(verdict: RegionHealth) -> str:
    """The verdict in a few words; each gateway's own reason is in the evidence."""
    if verdict.status is Status.DOWN:
        return f"{verdict.total - verdict.up}/{verdict.total} gateways failing"
    if verdict.status is Status.UP:
        return f"{verdict.up}/{verdict.total} gateways up"
    return verdict.reason


def _cause(primary: str | None, target: str, health: Mapping[str, RegionHealth]) -> str:
    if primary is not None and primary in health and health[primary].status is Status.DOWN:
        return f"{primary} is down ({_brief(health[primary])}) and {target} could take over"
    return f"{target} is preferred and healthy again"
