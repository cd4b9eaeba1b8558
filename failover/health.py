"""Rise/fall state machines and region verdicts. Pure: the caller passes the clock in.

A check on a gateway starts UNKNOWN and needs ``rise`` successes in a row to be UP or
``fall`` failures in a row to be DOWN; after that one lost packet moves nothing. A gateway is
UP for a domain when all its checks are UP, DOWN when any is DOWN. A region is UP for a domain
when at least ``min_healthy_gateways`` of its gateways are UP, DOWN when that can no longer be
true even if every UNKNOWN gateway came up, and UNKNOWN in between (start-up).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from failover.model import ProbeResult, RegionHealth, Status, Streak


def advance(streak: Streak, result: ProbeResult, rise: int, fall: int, now: float) -> Streak:
    successes = streak.successes + 1 if result.ok else 0
    failures = 0 if result.ok else streak.failures + 1
    status = streak.status
    if result.ok and status is not Status.UP and successes >= rise:
        status = Status.UP
    elif not result.ok and status is not Status.DOWN and failures >= fall:
        status = Status.DOWN
    since = now if status is not streak.status else streak.since
    return Streak(status, successes, failures, since, result.reason, result.latency, result.warning)


def gateway_status(checks: Iterable[Streak]) -> Status:
    statuses = [s.status for s in checks]
    if any(s is Status.DOWN for s in statuses):
        return Status.DOWN
    if statuses and all(s is Status.UP for s in statuses):
        return Status.UP
    return Status.UNKNOWN


def region_health(
    region: str,
    gateways: Mapping[str, tuple[Status, str]],  # gateway -> (status, reason of its worst check)
    min_healthy: int,
    previous: RegionHealth | None,
    now: float,
) -> RegionHealth:
    total = len(gateways)
    up = sum(1 for status, _ in gateways.values() if status is Status.UP)
    unknown = sum(1 for status, _ in gateways.values() if status is Status.UNKNOWN)
    if up >= min_healthy:
        status = Status.UP
    elif up + unknown < min_healthy:
        status = Status.DOWN
    else:
        status = Status.UNKNOWN
    failing = [f"{gw} {why}" for gw, (st, why) in sorted(gateways.items()) if st is Status.DOWN]
    if status is Status.UP:
        reason = f"{up}/{total} gateways up"
    elif status is Status.DOWN:
        reason = f"{total - up}/{total} gateways failing: {'; '.join(failing)}"
    else:
        reason = f"{up}/{total} gateways up, {unknown} not yet known"
    since = previous.since if previous and previous.status is status else now
    seen = tuple(sorted((gw, st) for gw, (st, _) in gateways.items()))
    return RegionHealth(region, status, up, total, since, reason, gateways=seen)


def quorum_verdict(views: Mapping[str, RegionHealth], quorum: int | None = None) -> RegionHealth:
    """Merge observers' views of one region: DOWN only when a quorum of them sees it DOWN.

    ``quorum`` defaults to a majority of the observers that reported. One observer with a
    broken network therefore cannot move traffic; with a single observer its view is the vote.
    """
    if not views:
        raise ValueError("no observer has reported on this region")
    need = quorum if quorum is not None else len(views) // 2 + 1
    ordered = sorted(views.items())
    down = [(o, v) for o, v in ordered if v.status is Status.DOWN]
    up = [(o, v) for o, v in ordered if v.status is Status.UP]
    if len(down) >= need:
        base = down[0][1]
        since = max(v.since or 0.0 for _, v in down)
        seen = ", ".join(o for o, _ in down)
        suffix = f" [seen by {len(down)}/{len(views)}: {seen}]" if len(views) > 1 else ""
        return RegionHealth(base.region, Status.DOWN, base.up, base.total, since, base.reason + suffix)
    if up:
        base = up[0][1]
        since = min(v.since or 0.0 for _, v in up)
        return RegionHealth(base.region, Status.UP, base.up, base.total, since, base.reason)
    base = ordered[0][1]
    reason = f"no quorum: {len(down)}/{len(views)} observers see it down, none up"
    return RegionHealth(base.region, Status.UNKNOWN, base.up, base.total, None, reason)


def voters_verdict(views: Mapping[str, RegionHealth], voters: Sequence[str], region: str) -> RegionHealth:
    """Merge the configured voters' fresh views of one region (the etcd store's quorum).

    DOWN only when a strict majority of the *configured* voters report it DOWN. With fewer fresh
    reports than a majority, the verdict is UNKNOWN whatever they say: nothing moves
    automatically (fail static) until enough vantage points report again. A report from a name
    that is not a voter does not count.
    """
    need = len(voters) // 2 + 1
    votes = {o: v for o, v in sorted(views.items()) if o in voters}
    down = [o for o, v in votes.items() if v.status is Status.DOWN]
    up = [o for o, v in votes.items() if v.status is Status.UP]
    if len(down) >= need:
        base = votes[down[0]]
        since = max(votes[o].since or 0.0 for o in down)
        reason = f"{base.reason} [seen by {len(down)}/{len(voters)}: {', '.join(down)}]"
        return RegionHealth(region, Status.DOWN, base.up, base.total, since, reason)
    if len(votes) < need:
        silent = [o for o in voters if o not in votes]
        reason = (
            f"no quorum: {len(votes)}/{len(voters)} observers reporting, {need} needed (silent: {', '.join(silent)})"
        )
        first = next(iter(votes.values()), None)
        up_count, total = (first.up, first.total) if first else (0, 0)
        return RegionHealth(region, Status.UNKNOWN, up_count, total, None, reason, quorum=False)
    if up:
        base = votes[up[0]]
        since = min(votes[o].since or 0.0 for o in up)
        suffix = f" [{len(down)}/{len(voters)} see it down: {', '.join(down)}]" if down else ""
        return RegionHealth(region, Status.UP, base.up, base.total, since, base.reason + suffix)
    base = next(iter(votes.values()))
    reason = f"no verdict: {len(down)}/{len(voters)} observers see it down, none up"
    return RegionHealth(region, Status.UNKNOWN, base.up, base.total, None, reason)


def voters_gateways(
    own: Mapping[str, tuple[Status, str]], reports: Mapping[str, RegionHealth], voters: Sequence[str]
) -> dict[str, tuple[Status, str]]:
    """Each gateway's verdict for publishing, from the voters' reports on its region.

    Like a region, a gateway is DOWN only when a strict majority of the configured voters see
    it down; it is UP when it is not and some voter sees it up; UNKNOWN otherwise. So a leader
    with a bad path to one replica does not take that replica out of DNS on its own view.
    ``own`` (this observer's view, with its reasons) is the answer for gateways no report
    covers yet.
    """
    need = len(voters) // 2 + 1
    seen: dict[str, list[tuple[str, Status]]] = {}
    for observer, report in sorted(reports.items()):
        if observer in voters:
            for gateway, status in report.gateways:
                seen.setdefault(gateway, []).append((observer, status))
    merged: dict[str, tuple[Status, str]] = {}
    for gateway, (status, reason) in own.items():
        votes = seen.get(gateway)
        if not votes:
            merged[gateway] = (status, reason)
            continue
        down = [o for o, st in votes if st is Status.DOWN]
        if len(down) >= need:
            why = reason if status is Status.DOWN else f"down for {', '.join(down)}"
            merged[gateway] = (Status.DOWN, f"{why} [seen by {len(down)}/{len(voters)}]")
        elif any(st is Status.UP for _, st in votes):
            merged[gateway] = (Status.UP, reason if status is Status.UP else f"up for a majority; here: {reason}")
        else:
            merged[gateway] = (Status.UNKNOWN, reason)
    return merged
