"""The ownership marker and the fence every DNS adapter plans with: epochs and fencing tokens.

The plan is pure, so these run a zone-file adapter's ``plan`` over hand-made ``Live`` values
(no file is touched)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.adapters._dns import marker_to_write
from failover.adapters.abc import Desired, Live, Marker
from failover.adapters.zonefile import ZonefileAdapter
from failover.errors import LostRace

DOMAIN = "api.example.com"
OLD_FORM = "epoch=3 primary=east by=west at=1700000000"
ADDRESSES = ("192.0.2.10",)


def desired(epoch: int = 3, primary: str = "east", token: int = 0, at: int = 1_700_000_100) -> Desired:
    return Desired(DOMAIN, primary, epoch, ADDRESSES, 30, "east", at, token=token)


def live(marker_text: str | None) -> Live:
    return Live(DOMAIN, ADDRESSES, 30, marker_text)


@pytest.fixture
def adapter(tmp_path: Path) -> ZonefileAdapter:
    return ZonefileAdapter(DOMAIN, tmp_path / "never-written.zone", "example.com.")


# -- the text ------------------------------------------------------------------------------------


def test_a_marker_without_a_token_reads_as_token_0_and_is_written_back_unchanged() -> None:
    marker = Marker.parse(OLD_FORM)
    assert marker == Marker(3, "east", "west", 1_700_000_000, 0)
    assert marker.text() == OLD_FORM  # sqlite-only deployments keep today's exact marker


def test_a_marker_with_a_token_reads_and_writes_it() -> None:
    text = OLD_FORM + " token=42"
    marker = Marker.parse(text)
    assert marker == Marker(3, "east", "west", 1_700_000_000, 42)
    assert marker.text() == text
    assert Marker.parse(f'"{text}"') == marker  # as a TXT value, quotes and all


def test_token_0_is_never_written() -> None:
    assert "token" not in Marker(1, "east", "east", 1, 0).text()
    assert Desired(DOMAIN, "east", 1, ADDRESSES, 30, "east", 1).marker().token == 0
    assert desired(token=9).marker() == Marker(3, "east", "east", 1_700_000_100, 9)


@pytest.mark.parametrize("text", [
    None,
    "",
    "epoch=3 primary=east by=west",
    OLD_FORM + " token=",
    OLD_FORM + " token=-1",
    OLD_FORM + " token=7 extra=1",
    OLD_FORM + "token=7",
    "token=7 " + OLD_FORM,
])
def test_anything_else_is_not_a_marker(text: str | None) -> None:
    assert Marker.parse(text) is None


names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)


@given(st.integers(0, 2**63), names, names, st.integers(0, 2**40), st.integers(0, 2**63))
def test_text_and_parse_round_trip(epoch: int, primary: str, by: str, at: int, token: int) -> None:
    marker = Marker(epoch, primary, by, at, token)
    assert Marker.parse(marker.text()) == marker


# -- the fence in plan() -------------------------------------------------------------------------


def test_a_higher_live_token_is_a_lost_race_naming_both_tokens(adapter: ZonefileAdapter) -> None:
    with pytest.raises(LostRace, match=r"fencing token 8 .*newer than our token 5"):
        adapter.plan(live(OLD_FORM + " token=8"), desired(epoch=4, token=5))  # even at a newer epoch
    with pytest.raises(LostRace, match="fencing token 1"):
        adapter.plan(live(OLD_FORM + " token=1"), desired())  # a leader wrote; we hold none


def test_a_newer_live_epoch_is_still_a_lost_race(adapter: ZonefileAdapter) -> None:
    with pytest.raises(LostRace, match=r"holds epoch 3 .*newer than our epoch 2"):
        adapter.plan(live(OLD_FORM + " token=5"), desired(epoch=2, token=5))
    with pytest.raises(LostRace, match="newer than our epoch 2"):
        adapter.plan(live(OLD_FORM), desired(epoch=2, token=9))  # a higher token does not undo the epoch rule


def test_the_same_decision_under_the_same_token_is_in_sync(adapter: ZonefileAdapter) -> None:
    assert adapter.plan(live(OLD_FORM), desired()).noop
    assert adapter.plan(live(OLD_FORM + " token=5"), desired(token=5)).noop


def test_a_lower_live_token_rewrites_the_marker_under_ours(adapter: ZonefileAdapter) -> None:
    plan = adapter.plan(live(OLD_FORM + " token=2"), desired(token=5))
    assert plan.changes == (f"_failover.{DOMAIN} TXT: {OLD_FORM} token=2 -> "
                            "epoch=3 primary=east by=east at=1700000100 token=5",)
    assert marker_to_write(plan) == "epoch=3 primary=east by=east at=1700000100 token=5"

    from_sqlite = adapter.plan(live(OLD_FORM), desired(token=1))  # the first leader after sqlite
    assert marker_to_write(from_sqlite) == "epoch=3 primary=east by=east at=1700000100 token=1"


def test_a_drift_repair_keeps_the_old_marker_text(adapter: ZonefileAdapter) -> None:
    drifted = Live(DOMAIN, ("192.0.2.99",), 30, OLD_FORM + " token=5")
    plan = adapter.plan(drifted, desired(token=5))
    assert len(plan.changes) == 1 and "192.0.2.99" in plan.changes[0]
    assert marker_to_write(plan) == OLD_FORM + " token=5"  # `at` still says when east was first published

    moved = adapter.plan(live(OLD_FORM), desired(epoch=4, primary="west"))
    assert marker_to_write(moved) == "epoch=4 primary=west by=east at=1700000100"
