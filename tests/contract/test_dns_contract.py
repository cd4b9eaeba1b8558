"""One contract, every DNS adapter (rfc2136 on BIND, route53 on moto, clouddns on the stand-in,
zonefile on a file).

What failover relies on, whatever the provider: the first publish writes the records and the
marker; the same decision again sends nothing; a new decision moves the records; a hand edit
is repaired and keeps the marker; a writer who loses a race overwrites nothing; a marker
written under a higher fencing token (a newer leader) is never overwritten, and a new
leader's token is written into the marker; verify checks the records and the marker's
epoch, primary and token; bad credentials and an unreachable provider give a clear
AdapterError and change nothing.
"""

from __future__ import annotations

import time

import pytest

from failover.errors import AdapterError, LostRace, VerifyError
from tests.contract.conftest import EAST, EAST_ADDRS, WEST, WEST_ADDRS, Stand, desired, reconcile


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
    reconcile(adapter, desired(stand.domain))
    first = stand.published().marker
    stand.hand_edit(("203.0.113.99",), ttl=300)

    want = desired(stand.domain, at=1_700_000_500)  # a later cycle of the same decision
    plan = adapter.plan(adapter.read(), want)
    assert len(plan.changes) == 1 and "203.0.113.99" in plan.changes[0]  # records only; the marker is current
    adapter.apply(plan)
    adapter.verify(want)
    now = stand.published()
    assert now.addresses == EAST_ADDRS and now.ttl == 30
    assert now.marker == first  # kept as written: its `at` says when this primary was first published


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


def test_a_newer_leaders_token_is_never_overwritten(stand: Stand) -> None:
    ours = stand.adapter()
    reconcile(ours, desired(stand.domain, token=3))
    stale = ours.read()

    # a newer leader (token 7) publishes between our read and our apply, at an older epoch
    # than ours: the token, not the epoch, is what fences us out
    theirs_text = f"epoch=2 primary={WEST} by={WEST} at=1700000200 token=7"
    stand.hand_edit(WEST_ADDRS)
    stand.hand_marker(theirs_text)
    before = stand.published()
    ours_later = desired(stand.domain, EAST, 3, ("192.0.2.77",), at=1_700_000_300, token=3)

    with pytest.raises(LostRace):  # the change conditional on the marker we read is refused whole
        ours.apply(ours.plan(stale, ours_later))
    assert stand.published() == before and before.marker == theirs_text
    sent = stand.change_requests()

    # re-read: the plan refuses to act under our older token, even for the decision they published
    with pytest.raises(LostRace, match=r"holds fencing token 7.*newer than our token 3"):
        ours.plan(ours.read(), ours_later)
    with pytest.raises(LostRace, match="fencing token 7"):
        ours.plan(ours.read(), desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST, at=1_700_000_200, token=3))
    assert stand.published() == before and stand.change_requests() == sent


def test_a_new_leaders_token_is_written_into_the_marker(stand: Stand) -> None:
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    assert stand.published().marker == f"epoch=1 primary={EAST} by={EAST} at=1700000000"  # no token: as before
    before = stand.change_requests()

    # the same decision, applied by a leader holding token 4: only the marker changes
    under_token = desired(stand.domain, by=WEST, at=1_700_000_400, token=4)
    plan = adapter.plan(adapter.read(), under_token)
    assert len(plan.changes) == 1 and "token=4" in plan.changes[0]
    adapter.apply(plan)
    adapter.verify(under_token)
    now = stand.published()
    assert now.addresses == EAST_ADDRS
    assert now.marker == f"epoch=1 primary={EAST} by={WEST} at=1700000400 token=4"
    assert stand.change_requests() == before + 1
    assert reconcile(adapter, desired(stand.domain, at=1_700_000_999, token=4)) == ()  # in sync under token 4


def test_verify_checks_records_epoch_primary_and_token(stand: Stand) -> None:
    adapter = stand.adapter()
    want = desired(stand.domain, token=2)
    reconcile(adapter, want)
    adapter.verify(want)
    good = stand.published().marker
    assert good is not None

    for wrong in (
        f"epoch=1 primary={WEST} by={EAST} at=1700000000 token=2",  # another primary, same epoch
        f"epoch=2 primary={EAST} by={EAST} at=1700000000 token=2",  # another epoch
        f"epoch=1 primary={EAST} by={EAST} at=1700000000 token=5",  # another leader's token
        f"epoch=1 primary={EAST} by={EAST} at=1700000000",  # no token
    ):
        stand.hand_marker(wrong)
        with pytest.raises(VerifyError, match="marker"):
            adapter.verify(want)
    stand.hand_marker(good)
    adapter.verify(want)
    stand.hand_edit(WEST_ADDRS)
    with pytest.raises(VerifyError):
        adapter.verify(want)


def test_wrong_credentials_give_a_clear_error_and_change_nothing(credentialed_stand: Stand) -> None:
    stand = credentialed_stand
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
    words = ("unreachable", "cannot reach", "connect", "refused", "cannot read")  # the last: a file's path
    assert any(w in str(error.value).lower() for w in words), error.value
    with pytest.raises(AdapterError):
        adapter.check_access()


def test_check_access_names_the_zone(stand: Stand) -> None:
    report = stand.adapter().check_access()
    assert "example.com" in report and stand.adapter().name in report
