"""The election: a pure function from what is known to what should be.

``decide()`` reads no clock, does no I/O and keeps no globals: the same inputs give the same
decision. Rules, in the order they apply for one domain:

1. An active manual override wins: its region is primary, healthy or not (the ``promote``
   command refuses an unhealthy region unless forced; the engine obeys what was stored).
2. First election: the best healthy, undrained region by priority (lower wins), but only
   once every better region has a verdict: we never publish a guess at start-up.
3. The current primary stays while it is healthy and undrained. With ``failback: auto`` a
   better region takes over again once it has been healthy for ``failback_after``.
4. When the primary is down (or drained), the best healthy undrained region takes over,
   unless the hold-down since the last automatic change has not elapsed or the hourly budget of
   automatic changes is spent. A drain is an operator's act and skips both.
5. When no region can take over, the current primary stays (fail static) and we say so.
   So it does when too few observers report for any verdict (no quorum, with a shared
   store): nothing moves automatically, whatever the reports say.

The secondary is the best healthy undrained region other than the primary, if any.

Each decision carries one sentence (logged and audited) and the same reason as data
(``Decision.why``: the rule and its numbers: until when, how many of how many, which region),
which ``failover explain`` puts into words without deciding anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from failover.model import (
    Decision,
    DecisionKind,
    DomainState,
    Override,
    RegionHealth,
    Rule,
    Status,
    Why,
    effective_override,
    iso,
)
from failover.policy import Election, Region

HOUR = 3600.0

__all__ = ["decide", "effective_override", "fmt"]


def fmt(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _rank(regions: Sequence[Region]) -> list[Region]:
    return sorted(regions, key=lambda r: (r.priority, r.name))


def _status(health: Mapping[str, RegionHealth], region: str) -> Status:
    verdict = health.get(region)
    return verdict.status if verdict else Status.UNKNOWN


def _quorum(health: Mapping[str, RegionHealth], region: str) -> bool:
    verdict = health.get(region)
    return verdict.quorum if verdict else True


def _why(health: Mapping[str, RegionHealth], region: str) -> str:
    verdict = health.get(region)
    return verdict.reason if verdict else "no verdict yet"


def decide(
    domain: str,
    regions: Sequence[Region],
    current: DomainState | None,
    health: Mapping[str, RegionHealth],
    drained: frozenset[str],
    override: Override | None,
    rules: Election,
    now: float,
) -> Decision:
    state = current or DomainState(domain=domain)
    # automatic changes: the budget counts the last hour; a hold-down may be longer than that
    kept = tuple(t for t in state.failovers if now - t < max(HOUR, rules.hold_down))
    recent = tuple(t for t in kept if now - t < HOUR)
    state = replace(state, failovers=kept)
    ranked = _rank(regions)
    candidates = [r.name for r in ranked if _status(health, r.name) is Status.UP and r.name not in drained]

    def secondary_for(primary: str | None) -> str | None:
        return next((name for name in candidates if name != primary), None)

    def outcome(kind: DecisionKind, reason: str, primary: str | None, why: Why, automatic: bool = False) -> Decision:
        moved = primary != state.primary
        new = replace(
            state,
            primary=primary,
            secondary=secondary_for(primary),
            epoch=state.epoch + 1 if moved else state.epoch,
            changed_at=now if moved else state.changed_at,
            failovers=(*kept, now) if moved and automatic else kept,
            reason=reason,
        )
        return Decision(kind=kind, reason=reason, state=new, changed=moved, why=why)

    # 1. manual override
    if override is not None and override.active(now):
        note = (
            ""
            if _status(health, override.region) is Status.UP
            else (f" ({override.region} is {_status(health, override.region)}: {_why(health, override.region)})")
        )
        until = f" until {iso(override.until)}" if override.until is not None else ""
        reason = f"{override.region} pinned by {override.by}{until}: {override.reason}{note}"
        return outcome(
            DecisionKind.OVERRIDE, reason, override.region, Why(Rule.OVERRIDE, override.region, override.until)
        )

    # 2. first election
    if state.primary is None:
        for region in ranked:
            status = _status(health, region.name)
            if region.name in drained or status is Status.DOWN:
                continue
            if status is Status.UNKNOWN:
                why = f" ({_why(health, region.name)})" if not _quorum(health, region.name) else ""
                return outcome(
                    DecisionKind.WAITING,
                    f"waiting for a first verdict on {region.name}{why}",
                    None,
                    Why(Rule.WAITING, region.name),
                )
            return outcome(
                DecisionKind.ELECTED,
                f"{region.name} elected ({_why(health, region.name)})",
                region.name,
                Why(Rule.MOVE, region.name),
            )
        return outcome(DecisionKind.WAITING, "no region is healthy yet; publishing nothing", None, Why(Rule.WAITING))

    primary = state.primary
    status = _status(health, primary)
    gone = primary not in {r.name for r in ranked}
    if gone:  # renamed or removed from the policy: like a drain, an operator's act
        drained = drained | {primary}
    # The hold-down runs from the last automatic change (ours, or one adopted from a marker);
    # a first election or an operator's move does not delay the next automatic failover.
    held_until = (max(kept) if kept else float("-inf")) + rules.hold_down
    budget_spent = len(recent) >= rules.max_failovers_per_hour
    budget = {"used": len(recent), "limit": rules.max_failovers_per_hour}

    # 2b. too few observers reporting: no automatic move at all (an override above still wins)
    if not _quorum(health, primary):
        return outcome(
            DecisionKind.FAIL_STATIC,
            f"{_why(health, primary)}: keeping {primary} (fail static)",
            primary,
            Why(Rule.NO_QUORUM, primary),
        )

    # 3. primary healthy: keep, or fail back
    if status is not Status.DOWN and primary not in drained:
        if rules.failback == "auto":
            best = candidates[0] if candidates else None
            better = best is not None and best != primary and _rank_of(ranked, best) < _rank_of(ranked, primary)
            if better and best is not None:
                healthy_for = now - (health[best].since or now)
                if healthy_for < rules.failback_after:
                    return outcome(
                        DecisionKind.KEEP,
                        f"{primary} kept; {best} healthy for {fmt(healthy_for)}, "
                        f"fails back after {fmt(rules.failback_after)}",
                        primary,
                        Why(Rule.FAILBACK_WAIT, best, wait=rules.failback_after - healthy_for),
                    )
                if now < held_until:
                    return outcome(
                        DecisionKind.HOLD,
                        f"{primary} kept; failback to {best} held down until {iso(held_until)}",
                        primary,
                        Why(Rule.HOLD_DOWN, best, held_until, **budget),
                    )
                if budget_spent:
                    return outcome(
                        DecisionKind.HOLD,
                        f"{primary} kept; failback to {best} refused: {len(recent)} automatic changes in the last hour",
                        primary,
                        Why(Rule.BUDGET, best, **budget),
                    )
                return outcome(
                    DecisionKind.FAILBACK,
                    f"{best} healthy for {fmt(healthy_for)}; failback from {primary}",
                    best,
                    Why(Rule.MOVE, best),
                    automatic=True,
                )
        word = "unknown" if status is Status.UNKNOWN else "healthy"
        return outcome(
            DecisionKind.KEEP,
            f"no action: {primary} is primary and {word} ({_why(health, primary)})",
            primary,
            _kept(ranked, primary, status, health, drained, rules),
        )

    # 4. primary down or drained
    cause = (
        f"{primary} drained"
        if primary in drained and status is not Status.DOWN
        else (f"{primary} down [{_why(health, primary)}]")
    )
    if gone:
        cause = f"{primary} is no longer in the policy"
    target = secondary_for(primary)
    if target is None:
        return outcome(
            DecisionKind.FAIL_STATIC,
            f"{cause}; no healthy region to take over: keeping {primary} (fail static)",
            primary,
            Why(Rule.FAIL_STATIC, primary),
        )
    if primary not in drained:
        if now < held_until:
            return outcome(
                DecisionKind.HOLD,
                f"{cause}; hold-down keeps {primary} until {iso(held_until)}",
                primary,
                Why(Rule.HOLD_DOWN, target, held_until, **budget),
            )
        if budget_spent:
            return outcome(
                DecisionKind.HOLD,
                f"{cause}; failover budget spent ({len(recent)} in the last hour): keeping {primary}",
                primary,
                Why(Rule.BUDGET, target, **budget),
            )
    return outcome(
        DecisionKind.FAILOVER,
        f"{cause}; {target} elected",
        target,
        Why(Rule.MOVE, target),
        automatic=primary not in drained,
    )


def _rank_of(ranked: Sequence[Region], name: str) -> int:
    return next(i for i, region in enumerate(ranked) if region.name == name)


def _kept(
    ranked: Sequence[Region],
    primary: str,
    status: Status,
    health: Mapping[str, RegionHealth],
    drained: frozenset[str],
    rules: Election,
) -> Why:
    """Why a primary with nothing to do stays: the most preferred region above it tells
    (drained by an operator, or healthy while failback is manual); else its own health."""
    if status is Status.UNKNOWN:
        return Why(Rule.UNDECIDED, primary)
    better = next((r.name for r in ranked if r.name != primary), None)
    if better is None or _rank_of(ranked, better) > _rank_of(ranked, primary):
        return Why(Rule.HEALTHY, primary)
    if better in drained:
        return Why(Rule.DRAIN, better)
    if rules.failback == "manual" and _status(health, better) is Status.UP:
        return Why(Rule.FAILBACK_MANUAL, better)
    return Why(Rule.HEALTHY, primary)
