"""The election engine: property tests over random inputs and timelines, plus worked examples.

``decide()`` is pure, so every test here calls it directly with hand-made health verdicts,
states, drains, overrides and rules, and a clock that is just a number.

The hold-down runs from the last *automatic* change (``DomainState.failovers``): a first
election, an override or a drain does not delay the next automatic failover, and automatic
changes are never closer together than ``hold_down``.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.engine import HOUR, decide, effective_override
from failover.model import Decision, DomainState, Override, RegionHealth, Status
from failover.policy import Election, Gateway, Region

DOMAIN = "api.example.com"
NAMES = ("r0", "r1", "r2", "r3")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- builders ----------------------------------------------------------------------------------


@functools.cache
def region(name: str, priority: int) -> Region:
    n = NAMES.index(name) if name in NAMES else 9
    return Region(name=name, priority=priority, gateways=[Gateway(name=f"{name}-gw", address=f"10.0.{n}.1")])


def rules(failback: str = "manual", failback_after: float = 600, hold_down: float = 300, budget: int = 4) -> Election:
    return Election.model_validate(
        {
            "failback": failback,
            "failback_after": f"{failback_after}s",
            "hold_down": f"{hold_down}s",
            "max_failovers_per_hour": budget,
        }
    )


def verdict(name: str, status: Status | str, since: float | None = 0.0) -> RegionHealth:
    status = Status(status)
    up = 1 if status is Status.UP else 0
    reason = {
        "up": "1/1 gateways up",
        "down": f"1/1 gateways failing: {name}-gw 503",
        "unknown": "0/1 gateways up, 1 not yet known",
    }[status.value]
    return RegionHealth(name, status, up, 1, since, reason)


def health(**statuses: str | tuple[str, float]) -> dict[str, RegionHealth]:
    out = {}
    for name, value in statuses.items():
        status, since = value if isinstance(value, tuple) else (value, 0.0)
        out[name] = verdict(name, status, since)
    return out


A, B, C = region("r0", 10), region("r1", 20), region("r2", 30)
ABC = [A, B, C]


def run(
    current: DomainState | None,
    h: Mapping[str, RegionHealth],
    now: float,
    regions: list[Region] | None = None,
    drained: frozenset[str] = frozenset(),
    override: Override | None = None,
    election: Election | None = None,
) -> Decision:
    return decide(DOMAIN, regions or ABC, current, h, drained, override, election or rules(), now)


def state(primary: str | None, changed_at: float | None = 0.0, epoch: int = 1, **kw: Any) -> DomainState:
    return DomainState(
        DOMAIN, primary=primary, epoch=epoch if primary else 0, changed_at=changed_at if primary else None, **kw
    )


# -- strategies --------------------------------------------------------------------------------

times = st.one_of(st.integers(0, 400), st.integers(0, 20_000)).map(float)


@dataclass
class Case:
    regions: list[Region]
    current: DomainState | None
    health: dict[str, RegionHealth]
    drained: frozenset[str]
    override: Override | None
    rules: Election
    now: float

    def decide(self, **changes: Any) -> Decision:
        args = {**self.__dict__, **changes}
        return decide(
            DOMAIN,
            args["regions"],
            args["current"],
            args["health"],
            args["drained"],
            args["override"],
            args["rules"],
            args["now"],
        )

    def status(self, name: str) -> Status:
        found = self.health.get(name)
        return found.status if found else Status.UNKNOWN


@st.composite
def election_rules(draw: st.DrawFn) -> Election:
    return rules(
        failback=draw(st.sampled_from(["manual", "auto"])),
        failback_after=draw(st.sampled_from([0, 30, 600, 3600])),
        hold_down=draw(st.sampled_from([0, 60, 300, 1800, 7200])),
        budget=draw(st.integers(1, 5)),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    regions = [region(n, draw(st.integers(0, 3))) for n in names]  # ties: the name breaks them
    now = draw(times)
    h = {}
    for n in names:
        if draw(st.integers(0, 5)):  # sometimes no verdict at all
            since = draw(st.one_of(st.none(), st.integers(0, int(now)).map(float)))
            h[n] = verdict(n, draw(st.sampled_from(list(Status))), since)
    current = None
    if draw(st.booleans()):
        primary = draw(st.one_of(st.none(), st.sampled_from(names)))
        if primary is None:
            current = DomainState(DOMAIN, epoch=0)
        else:
            changed_at = draw(st.one_of(st.none(), st.integers(0, int(now)).map(float)))
            failovers = draw(st.lists(st.integers(max(0, int(now) - 2 * 3600), int(now)).map(float), max_size=6))
            current = DomainState(
                DOMAIN,
                primary=primary,
                secondary=draw(st.one_of(st.none(), st.sampled_from(names))),
                epoch=draw(st.integers(1, 50)),
                changed_at=changed_at,
                failovers=tuple(sorted(failovers)),
                reason="before",
            )
    drained = frozenset(draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True)))
    override = None
    if draw(st.integers(0, 2)) == 0:
        at = draw(st.integers(0, int(now)).map(float))
        until = draw(st.one_of(st.none(), st.integers(int(at), int(now) + 3600).map(float)))
        override = Override(
            DOMAIN, draw(st.sampled_from(names)), "runbook 7", "oncall@host", at, until, draw(st.booleans())
        )
    return Case(regions, current, h, drained, override, draw(election_rules()), now)


def automatic(case: Case, d: Decision) -> bool:
    """A change the engine made on its own (not an override, a drain or the first election)."""
    old = case.current.primary if case.current else None
    return d.changed and d.kind != "override" and old is not None and old not in case.drained


# -- properties of one decision ----------------------------------------------------------------


@SETTINGS
@given(cases())
def test_never_elects_an_unhealthy_or_drained_region_without_an_override(case: Case) -> None:
    d = case.decide()
    if d.kind == "override":
        return
    if d.changed:
        assert case.status(d.state.primary) is Status.UP, d
        assert d.state.primary not in case.drained, d
    if d.state.secondary is not None:
        assert d.state.secondary != d.state.primary
        assert case.status(d.state.secondary) is Status.UP
        assert d.state.secondary not in case.drained


@SETTINGS
@given(cases())
def test_hold_down_respected_unless_override_or_drain(case: Case) -> None:
    """No automatic change within hold_down of the last automatic one; overrides and drains
    (an operator's act) are not automatic and are not held."""
    d = case.decide()
    old = case.current
    if old is None or not old.failovers:
        return
    if case.now - max(old.failovers) < case.rules.hold_down:
        assert not automatic(case, d), d
        if d.changed:
            assert d.kind == "override" or old.primary in case.drained, d


@SETTINGS
@given(cases())
def test_an_active_override_always_wins(case: Case) -> None:
    d = case.decide()
    if case.override is not None and case.override.active(case.now):
        assert d.kind == "override"
        assert d.state.primary == case.override.region
        assert case.override.region in d.reason and case.override.reason in d.reason
    else:
        assert d.kind != "override"


@SETTINGS
@given(cases())
def test_expired_overrides_are_ignored(case: Case) -> None:
    if case.override is None or case.override.until is None:
        return
    expired = replace(case.override, until=min(case.override.until, case.now))
    assert not expired.active(case.now)
    assert case.decide(override=expired) == case.decide(override=None)


@SETTINGS
@given(cases())
def test_same_inputs_same_decision_and_no_clock(case: Case) -> None:
    boom = mock.Mock(side_effect=AssertionError("decide() read the clock"))
    with (
        mock.patch.object(time, "time", boom),
        mock.patch.object(time, "monotonic", boom),
        mock.patch.object(time, "time_ns", boom),
    ):
        first = case.decide()
        second = case.decide()
    assert first == second
    assert case.decide() == first


@SETTINGS
@given(cases())
def test_epoch_moves_by_one_exactly_when_the_primary_changes(case: Case) -> None:
    d = case.decide()
    old = case.current or DomainState(DOMAIN)
    assert d.changed == (d.state.primary != old.primary)
    assert d.state.epoch == old.epoch + (1 if d.changed else 0)
    if d.changed:
        assert d.state.changed_at == case.now
        assert d.state.primary is not None
    else:
        assert d.state.changed_at == old.changed_at
    assert d.state.domain == DOMAIN


@SETTINGS
@given(cases())
def test_budget_spent_means_no_automatic_change(case: Case) -> None:
    d = case.decide()
    old = case.current or DomainState(DOMAIN)
    recent = [t for t in old.failovers if case.now - t < HOUR]
    if len(recent) >= case.rules.max_failovers_per_hour:
        assert not automatic(case, d), d
    # the kept history covers the last hour (the budget) or the hold-down, whichever is longer,
    # plus this change when it was automatic
    window = max(HOUR, case.rules.hold_down)
    kept = [t for t in old.failovers if case.now - t < window]
    assert list(d.state.failovers) == kept + ([case.now] if automatic(case, d) else [])


@SETTINGS
@given(cases())
def test_every_decision_has_a_one_line_reason(case: Case) -> None:
    d = case.decide()
    assert d.reason and "\n" not in d.reason
    assert d.state.reason == d.reason
    if d.changed:
        assert d.state.primary in d.reason
        old = case.current.primary if case.current else None
        if old is not None and d.kind != "override":
            assert old in d.reason


# -- properties of timelines -------------------------------------------------------------------


@dataclass
class Sim:
    regions: list[Region]
    rules: Election
    now: float = 1_000_000.0
    current: DomainState | None = None
    health: dict[str, RegionHealth] = field(default_factory=dict)
    drained: frozenset[str] = frozenset()
    override: Override | None = None
    changes: list[tuple[float, Decision, bool]] = field(default_factory=list)  # (at, decision, automatic)
    decisions: int = 0

    def set_status(self, name: str, status: Status) -> None:
        old = self.health.get(name)
        if old is None or old.status is not status:  # since moves on transitions only
            self.health[name] = verdict(name, status, self.now)

    def step(self) -> Decision:
        before = self.current or DomainState(DOMAIN)
        d = decide(DOMAIN, self.regions, self.current, self.health, self.drained, self.override, self.rules, self.now)
        self.decisions += 1
        active = self.override is not None and self.override.active(self.now)
        # step-wise invariants
        assert d.state.epoch == before.epoch + d.changed
        if active:
            assert d.state.primary == self.override.region  # type: ignore[union-attr]
        elif d.changed:
            assert self.health[d.state.primary].status is Status.UP  # type: ignore[index]
            assert d.state.primary not in self.drained
        auto = d.changed and not active and before.primary is not None and before.primary not in self.drained
        if d.changed:
            self.changes.append((self.now, d, auto))
        self.current = d.state
        return d


@st.composite
def flapping(draw: st.DrawFn) -> tuple[Sim, list[tuple[int, list[tuple[str, Status]]]]]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique=True))
    regions = [region(n, i * 10) for i, n in enumerate(names)]
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(1, 120),  # seconds until the next round
                st.lists(st.tuples(st.sampled_from(names), st.sampled_from(list(Status))), max_size=2),
            ),
            min_size=30,
            max_size=80,
        )
    )
    return Sim(regions, draw(election_rules())), steps


def _hour_windows_ok(times_: list[float], budget: int) -> bool:
    return all(sum(1 for u in times_ if t - HOUR < u <= t) <= budget for t in times_)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(flapping())
def test_health_flaps_cannot_make_the_primary_flap(sim_steps: Any) -> None:
    sim, steps = sim_steps
    for name in (r.name for r in sim.regions):
        sim.set_status(name, Status.UP)
    for dt, flips in steps:
        for name, status in flips:
            sim.set_status(name, status)
        sim.step()
        sim.now += dt
        sim.step()  # a second round at the same instant changes nothing new
    # the first change is the election; the rest are automatic and rate limited
    if not sim.changes:
        return  # nothing was ever healthy long enough to elect
    assert sim.changes[0][1].kind == "elected"
    later = sim.changes[1:]
    assert all(auto for _, _, auto in later)
    at = [t for t, _, _ in later]
    assert all(b - a >= sim.rules.hold_down for a, b in itertools.pairwise(at)), at
    assert _hour_windows_ok(at, sim.rules.max_failovers_per_hour), at
    assert sim.current.epoch == len(sim.changes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(flapping(), st.data())
def test_flapping_with_operators_acting(sim_steps: Any, data: st.DataObject) -> None:
    """Drains and overrides come and go too: automatic changes still keep hold-down and budget."""
    sim, steps = sim_steps
    names = [r.name for r in sim.regions]
    for name in names:
        sim.set_status(name, Status.UP)
    for dt, flips in steps:
        for name, status in flips:
            sim.set_status(name, status)
        event = data.draw(st.integers(0, 12))
        if event == 0:
            sim.drained = sim.drained ^ {data.draw(st.sampled_from(names))}
        elif event == 1:
            until = data.draw(st.one_of(st.none(), st.integers(1, 1800).map(lambda s: sim.now + s)))
            sim.override = Override(DOMAIN, data.draw(st.sampled_from(names)), "drill", "ops", sim.now, until)
        elif event == 2:
            sim.override = None
        sim.step()
        sim.now += dt
    auto = [t for t, _, a in sim.changes if a]
    assert all(b - a >= sim.rules.hold_down for a, b in itertools.pairwise(auto)), auto
    assert _hour_windows_ok(auto, sim.rules.max_failovers_per_hour)
    epochs = [d.state.epoch for _, d, _ in sim.changes]
    assert epochs == list(range(1, len(epochs) + 1))


def test_an_hour_of_flapping_spends_at_most_the_budget() -> None:
    """The primary dies and recovers every 30 s for an hour; failback is automatic."""
    election = rules(failback="auto", failback_after=0, hold_down=60, budget=4)
    sim = Sim([A, B], election, now=0.0)
    sim.set_status("r0", Status.UP)
    sim.set_status("r1", Status.UP)
    sim.step()
    for i in range(1, 121):
        sim.now = i * 30.0
        sim.set_status("r0", Status.DOWN if i % 2 else Status.UP)
        sim.step()
    automatic_changes = [t for t, _, auto in sim.changes if auto]
    assert len(automatic_changes) >= 1
    assert _hour_windows_ok(automatic_changes, 4)
    assert [t for t in automatic_changes if t < HOUR] == [30.0, 120.0, 210.0, 300.0]
    assert all(b - a >= 60 for a, b in itertools.pairwise(automatic_changes))
    kinds = [d.kind for _, d, _ in sim.changes]
    assert kinds[:5] == ["elected", "failover", "failback", "failover", "failback"]


# -- worked examples ---------------------------------------------------------------------------


def test_first_election_waits_for_an_unknown_better_region() -> None:
    d = run(None, health(r0="unknown", r1="up", r2="up"), now=10)
    assert d.kind == "waiting" and d.state.primary is None and not d.changed
    assert "r0" in d.reason
    assert d.state.epoch == 0
    # no verdict at all is the same as unknown
    assert run(None, health(r1="up"), now=10).kind == "waiting"


def test_first_election_skips_down_and_drained_regions() -> None:
    d = run(None, health(r0="down", r1="up", r2="up"), now=10)
    assert (d.kind, d.state.primary, d.state.secondary, d.state.epoch) == ("elected", "r1", "r2", 1)
    assert d.changed and "r1" in d.reason
    d = run(None, health(r0="unknown", r1="up", r2="up"), now=10, drained=frozenset({"r0"}))
    assert d.state.primary == "r1"


def test_first_election_picks_the_best_priority() -> None:
    d = run(None, health(r0="up", r1="up", r2="up"), now=10)
    assert d.state.primary == "r0" and d.state.secondary == "r1"
    assert d.state.failovers == ()  # an election is not an automatic failover


def test_priority_ties_are_broken_by_name() -> None:
    regions = [region("r1", 5), region("r0", 5)]
    d = run(None, health(r0="up", r1="up"), now=10, regions=regions)
    assert d.state.primary == "r0"


def test_nothing_healthy_at_start_publishes_nothing() -> None:
    d = run(None, health(r0="down", r1="down", r2="down"), now=10)
    assert d.kind == "waiting" and d.state.primary is None and not d.changed


def test_failover_names_the_failed_and_the_elected_region() -> None:
    d = run(state("r0", changed_at=0), health(r0="down", r1="up", r2="up"), now=1000)
    assert (d.kind, d.state.primary, d.state.secondary) == ("failover", "r1", "r2")
    assert d.changed and d.state.epoch == 2 and d.state.failovers == (1000.0,)
    assert "r0" in d.reason and "r1" in d.reason
    assert "503" in d.reason  # why r0 is down


def test_fail_static_when_all_are_down() -> None:
    d = run(state("r0", changed_at=0), health(r0="down", r1="down", r2="down"), now=1000)
    assert d.kind == "fail_static"
    assert d.state.primary == "r0" and not d.changed and d.state.epoch == 1
    assert "fail static" in d.reason and "r0" in d.reason
    assert "no healthy region" in d.reason


def test_unknown_primary_is_kept() -> None:
    d = run(state("r0"), health(r0="unknown", r1="up"), now=1000)
    assert d.kind == "keep" and d.state.primary == "r0" and not d.changed


def test_hold_down_keeps_a_dead_primary_for_a_while() -> None:
    """r0 came back by failback at 1000; it dies again at once: the hold-down keeps it."""
    h = health(r0="down", r1="up")
    current = state("r0", changed_at=1000, failovers=(500.0, 1000.0))
    d = run(current, h, now=1299)
    assert d.kind == "hold" and d.state.primary == "r0" and not d.changed
    assert "hold-down" in d.reason and "r0" in d.reason
    d = run(current, h, now=1300)
    assert d.kind == "failover" and d.state.primary == "r1"


def test_hold_down_counts_from_an_automatic_change_at_time_zero() -> None:
    current = state("r0", changed_at=0.0, failovers=(0.0,))
    d = run(current, health(r0="down", r1="up"), now=10)
    assert d.kind == "hold" and d.state.primary == "r0"
    assert run(current, health(r0="down", r1="up"), now=300).state.primary == "r1"


def test_an_election_or_operator_move_does_not_delay_a_failover() -> None:
    """Only automatic changes start a hold-down: r0 was just elected (or promoted) and died."""
    for now in (10.0, 1000.0):
        d = run(state("r0", changed_at=now - 5), health(r0="down", r1="up"), now=now, election=rules(hold_down=7200))
        assert d.kind == "failover" and d.state.primary == "r1", d


def test_hold_down_longer_than_an_hour_is_kept() -> None:
    """hold_down: 2h means two automatic changes are at least 2h apart, even though the
    budget only counts the last hour."""
    t0 = 1_700_000_000.0
    election = rules(hold_down=7200, budget=4)
    after = run(state("r0"), health(r0="down", r1="up"), now=t0, election=election)
    assert after.kind == "failover" and after.state.failovers == (t0,)
    held = run(after.state, health(r0="up", r1="down"), now=t0 + 4000, election=election)
    assert held.kind == "hold" and held.state.primary == "r1", held
    moved = run(held.state, health(r0="up", r1="down"), now=t0 + 7200, election=election)
    assert moved.kind == "failover" and moved.state.primary == "r0"


def test_budget_spent_holds_with_a_reason() -> None:
    current = state("r0", changed_at=1000, failovers=(100.0, 400.0, 700.0, 1000.0))
    d = run(current, health(r0="down", r1="up"), now=3000)
    assert d.kind == "hold" and d.state.primary == "r0"
    assert "budget" in d.reason and "4" in d.reason
    # an hour after the oldest, one slot is free again
    d = run(current, health(r0="down", r1="up"), now=3700)
    assert d.kind == "failover" and d.state.failovers == (400.0, 700.0, 1000.0, 3700.0)


def test_failback_manual_keeps_the_secondary() -> None:
    current = state("r1", changed_at=0, epoch=2)
    d = run(current, health(r0=("up", 0.0), r1="up"), now=100_000)
    assert d.kind == "keep" and d.state.primary == "r1" and not d.changed
    assert d.state.secondary == "r0"


def test_failback_auto_only_after_failback_after() -> None:
    election = rules(failback="auto", failback_after=600, hold_down=300)
    current = state("r1", changed_at=0, epoch=2)
    h = health(r0=("up", 5000.0), r1="up")
    d = run(current, h, now=5599, election=election)
    assert d.kind == "keep" and d.state.primary == "r1"
    assert "r0" in d.reason and "fails back after" in d.reason
    d = run(current, h, now=5600, election=election)
    assert d.kind == "failback" and d.state.primary == "r0" and d.changed
    assert "r0" in d.reason and "r1" in d.reason
    assert d.state.failovers == (5600.0,)  # failback is automatic: it spends budget


def test_failback_auto_respects_hold_down() -> None:
    election = rules(failback="auto", failback_after=0, hold_down=300)
    current = state("r1", changed_at=1000, epoch=2, failovers=(1000.0,))
    d = run(current, health(r0="up", r1="up"), now=1100, election=election)
    assert d.kind == "hold" and d.state.primary == "r1"
    assert "r0" in d.reason and "held down" in d.reason
    assert run(current, health(r0="up", r1="up"), now=1300, election=election).kind == "failback"


def test_failback_auto_does_not_move_to_a_worse_region() -> None:
    election = rules(failback="auto", failback_after=0, hold_down=0)
    d = run(state("r1", changed_at=0, epoch=2), health(r0="down", r1="up", r2="up"), now=10_000, election=election)
    assert d.kind == "keep" and d.state.primary == "r1"


def test_drain_moves_immediately_despite_hold_down_and_budget() -> None:
    current = state("r0", changed_at=999, failovers=(100.0, 400.0, 700.0, 999.0))
    d = run(current, health(r0="up", r1="up"), now=1000, drained=frozenset({"r0"}))
    assert d.kind == "failover" and d.state.primary == "r1" and d.changed
    assert "r0 drained" in d.reason and "r1" in d.reason
    assert d.state.failovers == current.failovers  # an operator's act spends no budget


def test_drained_region_with_nowhere_to_go_stays() -> None:
    d = run(state("r0"), health(r0="up", r1="down", r2="down"), now=1000, drained=frozenset({"r0"}))
    assert d.kind == "fail_static" and d.state.primary == "r0"


def test_override_wins_even_over_an_unhealthy_region_and_says_so() -> None:
    override = Override(DOMAIN, "r2", "DB migration", "alice@host", at=900, until=2000)
    d = run(state("r0"), health(r0="up", r1="up", r2="down"), now=1000, override=override)
    assert d.kind == "override" and d.state.primary == "r2" and d.changed
    assert d.state.failovers == ()  # not automatic
    assert "alice@host" in d.reason and "DB migration" in d.reason and "r2 is down" in d.reason
    assert d.state.secondary == "r0"
    # released: ordinary rules again; r2 is down, so back to r0 at once (an override is
    # not an automatic change and starts no hold-down)
    after = run(d.state, health(r0="up", r1="up", r2="down"), now=1001, override=None)
    assert after.kind == "failover" and after.state.primary == "r0"
    # expired at 2000: the same as released
    assert run(d.state, health(r0="up", r1="up", r2="down"), now=2000, override=override) == run(
        d.state, health(r0="up", r1="up", r2="down"), now=2000, override=None
    )


def test_override_on_the_current_primary_changes_nothing() -> None:
    override = Override(DOMAIN, "r0", "pin", "bob", at=0)
    d = run(state("r0", epoch=7), health(r0="down", r1="up"), now=1000, override=override)
    assert d.kind == "override" and not d.changed and d.state.epoch == 7


def test_primary_removed_from_the_policy_is_replaced() -> None:
    """A region renamed or removed in the policy cannot stay primary (and must not crash)."""
    for failback in ("manual", "auto"):
        election = rules(failback=failback, failback_after=0, hold_down=300)
        d = run(state("gone", changed_at=990), health(r0="up", r1="up"), now=1000, election=election)
        assert d.kind == "failover" and d.state.primary == "r0" and d.changed
        assert "gone" in d.reason and "r0" in d.reason


def test_effective_override_prefers_the_domain_and_skips_expired() -> None:
    star = Override("*", "r1", "all", "ops", at=0)
    own = Override(DOMAIN, "r2", "one", "ops", at=0, until=100)
    assert effective_override({"*": star, DOMAIN: own}, DOMAIN, now=50) == own
    assert effective_override({"*": star, DOMAIN: own}, DOMAIN, now=100) == star
    assert effective_override({"*": star}, "other.example.com", now=50) == star
    assert effective_override({DOMAIN: own}, DOMAIN, now=150) is None
    assert effective_override({}, DOMAIN, now=0) is None


@pytest.mark.parametrize("kind", ["failover", "failback", "hold", "keep", "fail_static", "waiting", "elected"])
def test_decision_kinds_are_reachable(kind: str) -> None:
    auto = rules(failback="auto", failback_after=0, hold_down=300)
    examples = {
        "failover": run(state("r0"), health(r0="down", r1="up"), now=1000),
        "failback": run(state("r1"), health(r0="up", r1="up"), now=1000, election=auto),
        "hold": run(state("r0", failovers=(900.0,)), health(r0="down", r1="up"), now=1000),
        "keep": run(state("r0"), health(r0="up", r1="up"), now=1000),
        "fail_static": run(state("r0"), health(r0="down", r1="down"), now=1000),
        "waiting": run(None, health(), now=1000),
        "elected": run(None, health(r0="up"), now=1000),
    }
    assert examples[kind].kind == kind
