"""The engine's structured reason (``Decision.why``), which ``failover explain`` puts into words:
each rule with the numbers it rests on, and always consistent with the decision's kind."""

from __future__ import annotations

import itertools

from failover.engine import decide
from failover.model import DecisionKind, DomainState, Override, RegionHealth, Rule, Status
from failover.policy import Election, Gateway, Region

DOMAIN = "api.example.com"
EAST = Region(name="east", priority=1, gateways=[Gateway(name="e1", address="10.0.0.1")])
WEST = Region(name="west", priority=2, gateways=[Gateway(name="w1", address="10.0.1.1")])
NOW = 100_000.0


def rules(**fields: object) -> Election:
    return Election.model_validate({"hold_down": "5m", "max_failovers_per_hour": 4, **fields})


def seen(name: str, status: Status, since: float = 0.0, quorum: bool = True) -> RegionHealth:
    return RegionHealth(name, status, int(status is Status.UP), 1, since, f"{name} is {status}", quorum)


def health(east: Status, west: Status, **kw: float) -> dict[str, RegionHealth]:
    return {"east": seen("east", east, kw.get("east_since", 0.0)), "west": seen("west", west)}


def on(primary: str, *failovers: float) -> DomainState:
    return DomainState(DOMAIN, primary=primary, epoch=3, failovers=failovers)


def test_hold_down_says_until_when_and_the_region_that_waits() -> None:
    d = decide(
        DOMAIN, [EAST, WEST], on("east", NOW - 60), health(Status.DOWN, Status.UP), frozenset(), None, rules(), NOW
    )
    assert d.kind is DecisionKind.HOLD and d.why is not None
    assert (d.why.rule, d.why.region, d.why.until, d.why.used, d.why.limit) == (Rule.HOLD_DOWN, "west", NOW + 240, 1, 4)


def test_budget_says_how_many_of_how_many() -> None:
    spent = on("east", NOW - 3000, NOW - 2000)
    d = decide(
        DOMAIN,
        [EAST, WEST],
        spent,
        health(Status.DOWN, Status.UP),
        frozenset(),
        None,
        rules(hold_down="0s", max_failovers_per_hour=2),
        NOW,
    )
    assert d.why is not None and (d.why.rule, d.why.region, d.why.used, d.why.limit) == (Rule.BUDGET, "west", 2, 2)


def test_failback_wait_says_how_many_seconds_are_left() -> None:
    d = decide(
        DOMAIN,
        [EAST, WEST],
        on("west"),
        health(Status.UP, Status.UP, east_since=NOW - 100),
        frozenset(),
        None,
        rules(failback="auto", failback_after="10m"),
        NOW,
    )
    assert d.why is not None and (d.why.rule, d.why.region, d.why.wait) == (Rule.FAILBACK_WAIT, "east", 500.0)


def test_a_kept_primary_names_what_keeps_it_below_a_better_region() -> None:
    up = health(Status.UP, Status.UP)
    manual = decide(DOMAIN, [EAST, WEST], on("west"), up, frozenset(), None, rules(), NOW)
    drained = decide(DOMAIN, [EAST, WEST], on("west"), up, frozenset({"east"}), None, rules(failback="auto"), NOW)
    down = decide(DOMAIN, [EAST, WEST], on("west"), health(Status.DOWN, Status.UP), frozenset(), None, rules(), NOW)
    best = decide(DOMAIN, [EAST, WEST], on("east"), up, frozenset(), None, rules(), NOW)
    unknown = decide(
        DOMAIN, [EAST, WEST], on("east"), health(Status.UNKNOWN, Status.UP), frozenset(), None, rules(), NOW
    )
    assert [(d.why.rule, d.why.region) for d in (manual, drained, down, best, unknown) if d.why] == [
        (Rule.FAILBACK_MANUAL, "east"),
        (Rule.DRAIN, "east"),
        (Rule.HEALTHY, "west"),
        (Rule.HEALTHY, "east"),
        (Rule.UNDECIDED, "east"),
    ]


def test_override_no_quorum_and_fail_static() -> None:
    pin = Override("*", "west", "INC-1", "alice", NOW - 10, until=NOW + 3600)
    pinned = decide(DOMAIN, [EAST, WEST], on("east"), health(Status.UP, Status.DOWN), frozenset(), pin, rules(), NOW)
    silent = {"east": seen("east", Status.UNKNOWN, quorum=False), "west": seen("west", Status.UNKNOWN, quorum=False)}
    no_quorum = decide(DOMAIN, [EAST, WEST], on("east"), silent, frozenset(), None, rules(), NOW)
    static = decide(DOMAIN, [EAST, WEST], on("east"), health(Status.DOWN, Status.DOWN), frozenset(), None, rules(), NOW)
    assert pinned.why is not None and (pinned.why.rule, pinned.why.region, pinned.why.until) == (
        Rule.OVERRIDE,
        "west",
        NOW + 3600,
    )
    assert no_quorum.why is not None and no_quorum.why.rule is Rule.NO_QUORUM
    assert static.why is not None and static.why.rule is Rule.FAIL_STATIC


EXPECTED = {
    DecisionKind.ELECTED: {Rule.MOVE},
    DecisionKind.FAILOVER: {Rule.MOVE},
    DecisionKind.FAILBACK: {Rule.MOVE},
    DecisionKind.OVERRIDE: {Rule.OVERRIDE},
    DecisionKind.HOLD: {Rule.HOLD_DOWN, Rule.BUDGET},
    DecisionKind.FAIL_STATIC: {Rule.FAIL_STATIC, Rule.NO_QUORUM},
    DecisionKind.WAITING: {Rule.WAITING},
    DecisionKind.KEEP: {Rule.HEALTHY, Rule.UNDECIDED, Rule.FAILBACK_WAIT, Rule.FAILBACK_MANUAL, Rule.DRAIN},
}


def test_every_decision_carries_a_why_that_matches_its_kind() -> None:
    statuses = list(Status)
    seen_rules: set[Rule] = set()
    for east, west, primary, drained, failback, after, history, quorum in itertools.product(
        statuses,
        statuses,
        (None, "east", "west"),
        (frozenset(), frozenset({"east"})),
        ("manual", "auto"),
        ("10m", "20m"),  # the better region has been healthy for 15m
        ((), (NOW - 60,), (NOW - 3000, NOW - 2000, NOW - 1000, NOW - 900)),
        (True, False),
    ):
        verdicts = {"east": seen("east", east, NOW - 900, quorum), "west": seen("west", west, NOW - 900, quorum)}
        state = DomainState(DOMAIN, primary=primary, epoch=1, failovers=history) if primary else None
        d = decide(
            DOMAIN, [EAST, WEST], state, verdicts, drained, None, rules(failback=failback, failback_after=after), NOW
        )
        assert d.why is not None and d.why.rule in EXPECTED[d.kind], (d.kind, d.why, d.reason)
        assert (d.why.rule is Rule.MOVE) == d.changed, d.reason
        seen_rules.add(d.why.rule)
    assert seen_rules >= set(Rule) - {Rule.OVERRIDE}
