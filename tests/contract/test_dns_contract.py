"""One contract, every DNS adapter (rfc2136 on BIND, route53 on moto, clouddns on the stand-in).

What failover relies on, whatever the provider: the first publish writes the records and the
marker; the same decision again sends nothing; a new decision moves the records; a hand edit
is repaired; a writer who loses a race overwrites nothing; bad credentials and an unreachable
provider give a clear AdapterError and change nothing.
"""

from __future__ import annotations

import time

import pytest

from failover.adapters.abc import Marker
from failover.errors import AdapterError, LostRace
from tests.contract.conftest import EAST, EAST_ADDRS, WEST, WEST_ADDRS, Published, Stand, desired, reconcile


def marker_of(published: Published) -> tuple[int, str] | None:
    marker = Marker.parse(published.marker)
    return (marker.epoch, marker.primary) if marker else None


def test_first_publish_writes_records_and_marker(stand: Stand) -> None:
    adapter = stand.adapter()
    live = adapter.read()
    assert live.addresses == () and live.marker_text is None

    want = desired(stand.domain)
    plan = adapter.plan(live, want)
    assert len(plan.changes) == 2  # the records and the marker
    adapter.apply(plan)
    adapter.verify(want)

    now = stand.published()
    assert now.addresses == EAST_ADDRS and now.ttl == 30
    assert now.marker == f"epoch=1 primary={EAST} by={EAST} at=1700000000"
    again = adapter.read()
    assert again.addresses == EAST_ADDRS and again.marker == want.marker()


def test_second_apply_of_the_same_decision_sends_no_change(stand: Stand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    before = stand.change_requests()

    plan = adapter.plan(adapter.read(), desired(stand.domain, at=1_700_000_999))  # a later cycle, same decision
    assert plan.noop, plan.changes
    assert reconcile(adapter, desired(stand.domain)) == ()
    assert stand.change_requests() == before  # counted at the provider


def test_failover_moves_records_and_marker(stand: Stand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    before = stand.change_requests()

    changes = reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, ttl=60, by=WEST, at=1_700_000_100))
    assert len(changes) == 2
    assert stand.change_requests() == before + 1  # records and marker in ONE request
    now = stand.published()
    assert now.addresses == WEST_ADDRS and now.ttl == 60  # the AAAA of the old primary is gone too
    assert now.marker == f"epoch=2 primary={WEST} by={WEST} at=1700000100"


def test_hand_edited_record_is_repaired(stand: Stand) -> None:
    adapter = stand.adapter()
    want = desired(stand.domain)
    reconcile(adapter, want)
    stand.hand_edit(("203.0.113.99",), ttl=300)

    plan = adapter.plan(adapter.read(), want)
    assert len(plan.changes) == 1 and "203.0.113.99" in plan.changes[0]  # records only; the marker is current
    adapter.apply(plan)
    adapter.verify(want)
    now = stand.published()
    assert now.addresses == EAST_ADDRS and now.ttl == 30
    assert marker_of(now) == (1, EAST)


def test_lost_race_overwrites_nothing(stand: Stand) -> None:
    ours = stand.adapter()
    reconcile(ours, desired(stand.domain))
    stale = ours.read()

    # another coordinator decides and publishes between our read and our apply
    theirs_text = f"epoch=2 primary={WEST} by={WEST} at=1700000200"
    stand.hand_edit(WEST_ADDRS)
    stand.hand_marker(theirs_text)
    before = stand.published()

    plan = ours.plan(stale, desired(stand.domain, EAST, 2, ("192.0.2.77",), at=1_700_000_201))
    assert not plan.noop
    with pytest.raises(LostRace):
        ours.apply(plan)
    assert stand.published() == before  # nothing of theirs was overwritten
    assert before.marker == theirs_text

    # re-reading shows a newer epoch than ours: the plan refuses to overwrite it
    stand.hand_marker(f"epoch=3 primary={WEST} by={WEST} at=1700000300")
    with pytest.raises(LostRace, match="newer than our epoch 2"):
        ours.plan(ours.read(), desired(stand.domain, EAST, 2, ("192.0.2.77",)))


def test_first_publish_loses_to_a_marker_that_appeared_meanwhile(stand: Stand) -> None:
    ours = stand.adapter()
    empty = ours.read()
    assert empty.marker_text is None
    theirs_text = f"epoch=1 primary={WEST} by={WEST} at=1700000050"
    stand.hand_marker(theirs_text)

    with pytest.raises(LostRace):
        ours.apply(ours.plan(empty, desired(stand.domain)))
    now = stand.published()
    assert now.marker == theirs_text and now.addresses == ()


def test_wrong_credentials_give_a_clear_error_and_change_nothing(stand: Stand) -> None:
    good = stand.adapter()
    reconcile(good, desired(stand.domain))
    live = good.read()
    before = stand.published()

    with stand.bad_credentials() as bad:
        with pytest.raises(AdapterError) as read_error:
            bad.read()
        assert not isinstance(read_error.value, LostRace)
        assert any(word in str(read_error.value) for word in ("credentials", "TSIG", "key")), read_error.value
        with pytest.raises(AdapterError) as apply_error:
            bad.apply(bad.plan(live, desired(stand.domain, WEST, 2, WEST_ADDRS)))
        assert not isinstance(apply_error.value, LostRace)
        with pytest.raises(AdapterError):
            bad.check_access()
    assert stand.published() == before


def test_unreachable_provider_fails_fast_and_clearly(stand: Stand) -> None:
    adapter = stand.unreachable()
    started = time.monotonic()
    with pytest.raises(AdapterError) as error:
        adapter.read()
    assert time.monotonic() - started < 10
    assert any(w in str(error.value).lower() for w in ("unreachable", "cannot reach", "connect", "refused"))
    with pytest.raises(AdapterError):
        adapter.check_access()


def test_check_access_names_the_zone(stand: Stand) -> None:
    report = stand.adapter().check_access()
    assert "example.com" in report and stand.adapter().name in report
