"""Rise/fall state machines, gateway and region verdicts, and the observers' quorum."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.health import advance, gateway_status, quorum_verdict, region_health
from failover.model import ProbeResult, RegionHealth, Status, Streak

OK = ProbeResult(True, 0.012, "200 in 12ms")
FAIL = ProbeResult(False, 1.0, "connect refused")


def feed(results: list[bool], rise: int = 2, fall: int = 3, start: Streak | None = None) -> list[Streak]:
    """Apply results at t = 1, 2, 3 ...; returns every intermediate streak."""
    streak = start or Streak()
    out = []
    for t, ok in enumerate(results, start=1):
        streak = advance(streak, OK if ok else FAIL, rise, fall, float(t))
        out.append(streak)
    return out


# -- rise / fall -------------------------------------------------------------------------------


def test_a_new_target_is_unknown_until_rise_successes() -> None:
    assert Streak().status is Status.UNKNOWN and Streak().since is None
    first, second = feed([True, True], rise=2)
    assert first.status is Status.UNKNOWN and first.since is None and first.successes == 1
    assert second.status is Status.UP and second.since == 2.0


def test_a_new_target_is_down_after_fall_failures() -> None:
    states = feed([False, False, False], fall=3)
    assert [s.status for s in states] == [Status.UNKNOWN, Status.UNKNOWN, Status.DOWN]
    assert states[-1].since == 3.0 and states[-1].failures == 3


def test_one_lost_probe_moves_nothing() -> None:
    states = feed([True, True, False, True, True], rise=2, fall=3)
    assert [s.status for s in states] == [Status.UNKNOWN] + [Status.UP] * 4
    assert {s.since for s in states[1:]} == {2.0}
    assert states[2].failures == 1 and states[3].failures == 0


def test_fall_consecutive_failures_make_it_down() -> None:
    states = feed([True, True, False, False, True, False, False, False], rise=2, fall=3)
    assert states[4].status is Status.UP  # the success broke the run of failures
    assert [s.status for s in states[5:]] == [Status.UP, Status.UP, Status.DOWN]
    assert states[-1].since == 8.0


def test_rise_consecutive_successes_bring_it_back() -> None:
    down = feed([False] * 3, fall=3)[-1]
    states = feed([True, False, True, True], rise=2, fall=3, start=down)
    assert [s.status for s in states] == [Status.DOWN, Status.DOWN, Status.DOWN, Status.UP]
    assert states[2].since == down.since  # unchanged while the status holds
    assert states[3].since == 4.0


def test_the_streak_carries_the_last_result() -> None:
    warned = ProbeResult(True, 0.2, "ok", warning="certificate expires in 3d")
    streak = advance(Streak(), warned, 1, 1, 5.0)
    assert (streak.reason, streak.latency, streak.warning) == ("ok", 0.2, "certificate expires in 3d")
    streak = advance(streak, FAIL, 1, 1, 6.0)
    assert (streak.status, streak.reason, streak.warning) == (Status.DOWN, "connect refused", None)


def reference(results: list[bool], rise: int, fall: int) -> list[tuple[Status, float | None]]:
    """The rule as written in DESIGN.md, the slow way."""
    out: list[tuple[Status, float | None]] = []
    status, since = Status.UNKNOWN, None
    for i, _ in enumerate(results):
        tail = results[: i + 1]
        ok_run = len(tail) - next((j + 1 for j in range(len(tail) - 1, -1, -1) if not tail[j]), 0)
        fail_run = len(tail) - next((j + 1 for j in range(len(tail) - 1, -1, -1) if tail[j]), 0)
        new = status
        if ok_run >= rise:
            new = Status.UP
        elif fail_run >= fall:
            new = Status.DOWN
        if new is not status:
            status, since = new, float(i + 1)
        out.append((status, since))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=40), st.integers(1, 5), st.integers(1, 5))
def test_rise_fall_matches_the_rule(results: list[bool], rise: int, fall: int) -> None:
    states = feed(results, rise, fall)
    assert [(s.status, s.since) for s in states] == reference(results, rise, fall)
    previous = Streak()
    for i, s in enumerate(states):
        # since moves exactly on transitions
        assert (s.since != previous.since) == (s.status is not previous.status)
        # a transition needs a full run: the last `fall` results failed, or the last `rise` passed
        if s.status is Status.DOWN and previous.status is not Status.DOWN:
            assert i + 1 >= fall and not any(results[i + 1 - fall : i + 1])
        if s.status is Status.UP and previous.status is not Status.UP:
            assert i + 1 >= rise and all(results[i + 1 - rise : i + 1])
        previous = s


# -- gateway and region verdicts ---------------------------------------------------------------


def streak(status: Status) -> Streak:
    return Streak(status=status)


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ([Status.UP, Status.UP], Status.UP),
        ([Status.UP, Status.DOWN], Status.DOWN),
        ([Status.UNKNOWN, Status.DOWN], Status.DOWN),
        ([Status.UP, Status.UNKNOWN], Status.UNKNOWN),
        ([Status.UNKNOWN], Status.UNKNOWN),
        ([], Status.UNKNOWN),
    ],
)
def test_gateway_status(checks: list[Status], expected: Status) -> None:
    assert gateway_status(streak(s) for s in checks) is expected


GW = {
    "up": (Status.UP, "200 in 3ms"),
    "down": (Status.DOWN, "http:8080/ready: 503"),
    "unknown": (Status.UNKNOWN, "not probed yet"),
}


def gateways(*kinds: str) -> dict[str, tuple[Status, str]]:
    return {f"gw{i}": GW[k] for i, k in enumerate(kinds)}


@pytest.mark.parametrize(
    ("kinds", "min_healthy", "expected"),
    [
        (("up", "up"), 1, Status.UP),
        (("up", "down"), 1, Status.UP),
        (("up", "down"), 2, Status.DOWN),
        (("up", "unknown"), 2, Status.UNKNOWN),
        (("down", "unknown"), 1, Status.UNKNOWN),
        (("down", "down"), 1, Status.DOWN),
        (("unknown", "unknown"), 1, Status.UNKNOWN),
        (("up", "up", "down"), 2, Status.UP),
        (("up", "down", "down"), 2, Status.DOWN),
    ],
)
def test_region_health_with_min_healthy(kinds: tuple[str, ...], min_healthy: int, expected: Status) -> None:
    verdict = region_health("eu", gateways(*kinds), min_healthy, None, 10.0)
    assert verdict.status is expected
    assert verdict.healthy is (expected is Status.UP)
    assert verdict.up == kinds.count("up") and verdict.total == len(kinds)
    assert verdict.region == "eu" and verdict.since == 10.0


def test_region_health_reason_names_the_failing_gateways() -> None:
    verdict = region_health("eu", gateways("down", "down"), 1, None, 10.0)
    assert verdict.reason.startswith("2/2 gateways failing")
    assert "gw0 http:8080/ready: 503" in verdict.reason and "gw1" in verdict.reason
    assert "\n" not in verdict.reason
    assert region_health("eu", gateways("up", "down"), 1, None, 1.0).reason == "1/2 gateways up"
    assert "not yet known" in region_health("eu", gateways("unknown"), 1, None, 1.0).reason


def test_region_health_since_moves_only_on_transitions() -> None:
    first = region_health("eu", gateways("up", "up"), 1, None, 10.0)
    same = region_health("eu", gateways("up", "down"), 1, first, 20.0)
    assert same.status is Status.UP and same.since == 10.0
    down = region_health("eu", gateways("down", "down"), 1, same, 30.0)
    assert down.status is Status.DOWN and down.since == 30.0
    still = region_health("eu", gateways("down", "down"), 1, down, 40.0)
    assert still.since == 30.0


# -- the observers' quorum ---------------------------------------------------------------------


def view(status: Status, since: float = 0.0, region: str = "eu") -> RegionHealth:
    up = 2 if status is Status.UP else 0
    return RegionHealth(region, status, up, 2, since, f"{status.value} as seen here")


def test_one_observer_of_three_seeing_down_does_not_make_it_down() -> None:
    merged = quorum_verdict({"a": view(Status.DOWN), "b": view(Status.UP, 5.0), "c": view(Status.UP, 7.0)})
    assert merged.status is Status.UP
    assert merged.since == 5.0 and merged.region == "eu"


def test_one_down_and_the_rest_unknown_is_no_quorum() -> None:
    merged = quorum_verdict({"a": view(Status.DOWN), "b": view(Status.UNKNOWN), "c": view(Status.UNKNOWN)})
    assert merged.status is Status.UNKNOWN
    assert "no quorum" in merged.reason and "1/3" in merged.reason


def test_two_observers_of_three_seeing_down_make_it_down() -> None:
    merged = quorum_verdict({"a": view(Status.DOWN, 100.0), "b": view(Status.UP), "c": view(Status.DOWN, 120.0)})
    assert merged.status is Status.DOWN
    assert merged.since == 120.0  # down since the quorum was reached
    assert "seen by 2/3: a, c" in merged.reason


def test_a_single_observer_is_the_whole_vote() -> None:
    assert quorum_verdict({"a": view(Status.DOWN, 3.0)}) == view(Status.DOWN, 3.0)
    assert quorum_verdict({"a": view(Status.UP, 3.0)}).status is Status.UP


def test_two_observers_that_disagree_keep_it_up() -> None:
    assert quorum_verdict({"a": view(Status.DOWN), "b": view(Status.UP)}).status is Status.UP


def test_explicit_quorum() -> None:
    views = {"a": view(Status.DOWN), "b": view(Status.UP), "c": view(Status.UP)}
    assert quorum_verdict(views, quorum=1).status is Status.DOWN
    assert quorum_verdict(views, quorum=3).status is Status.UP


def test_no_views_is_an_error() -> None:
    with pytest.raises(ValueError, match="no observer"):
        quorum_verdict({})


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdefg"), st.sampled_from(list(Status)), min_size=1))
def test_down_exactly_when_a_majority_sees_it_down(statuses: dict[str, Status]) -> None:
    merged = quorum_verdict({o: view(s, float(i)) for i, (o, s) in enumerate(statuses.items())})
    downs = sum(1 for s in statuses.values() if s is Status.DOWN)
    if downs > len(statuses) // 2:
        assert merged.status is Status.DOWN
    elif Status.UP in statuses.values():
        assert merged.status is Status.UP
    else:
        assert merged.status is Status.UNKNOWN
