"""One contract, every DNS adapter (rfc2136 on BIND and on PowerDNS, route53 on moto, clouddns on
the stand-in, zonefile on a file).

What failover relies on, whatever the provider: the first publish writes the records and the
marker; the same decision again sends nothing; a new decision moves the records; a hand edit
is repaired and keeps the marker; a writer who loses a race overwrites nothing; a marker
written under a higher fencing token (a newer leader) is never overwritten, and a new
leader's token is written into the marker; verify checks the records and the marker's
epoch, primary and token; bad credentials and an unreachable provider give a clear
AdapterError and change nothing.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import pytest

from failover.adapters.abc import marker_name
from failover.adapters.rfc2136 import Rfc2136Adapter
from failover.errors import AdapterError, LostRace, VerifyError
from tests.contract._relay import DnsTcpRelay
from tests.contract.conftest import (
    EAST,
    EAST_ADDRS,
    WEST,
    WEST_ADDRS,
    ZONE,
    Rfc2136Stand,
    Stand,
    desired,
    reconcile,
)
from tests.support.pdns import Pdns, start_pdns


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


# -- RFC 2136 on each server (BIND, PowerDNS): what the servers' own settings decide ---------------


def test_rfc2136_unsigned_update_is_refused_and_writes_nothing(rfc2136_stand: Rfc2136Stand) -> None:
    """The zone's update policy demands our key: PowerDNS's allow-dnsupdate-from admits loopback,
    so only TSIG-ALLOW-DNSUPDATE stands between an unsigned update and the zone."""
    stand = rfc2136_stand
    reconcile(stand.adapter(), desired(stand.domain))
    before = stand.published()
    unsigned = stand.make(stand.relay.port, signed=False)
    live = unsigned.read()  # queries need no key
    assert live.addresses == EAST_ADDRS

    with pytest.raises(AdapterError, match=r"REFUSED.*does not admit unsigned updates"):
        unsigned.apply(unsigned.plan(live, desired(stand.domain, WEST, 2, WEST_ADDRS)))
    assert stand.published() == before


@pytest.mark.parametrize("wrong", ["secret", "key name"])
def test_rfc2136_a_rejected_key_is_named_whichever_the_server(rfc2136_stand: Rfc2136Stand, wrong: str) -> None:
    """BIND answers BADSIG/BADKEY in a TSIG record, PowerDNS a bare NOTAUTH: the operator reads
    the same sentence either way."""
    stand = rfc2136_stand
    good = stand.adapter()
    reconcile(good, desired(stand.domain))
    live, before = good.read(), stand.published()
    secret = base64.b64encode(os.urandom(32)).decode() if wrong == "secret" else None
    key_name = "not-our-key." if wrong == "key name" else None
    bad = stand.make(stand.relay.port, secret=secret, key_name=key_name)

    named = rf"rejected our TSIG key {key_name or stand.server.key_name}.*check the key name, algorithm and secret"
    for attempt in (bad.read, bad.check_access, lambda: bad.apply(bad.plan(live, desired(stand.domain, WEST, 2)))):
        with pytest.raises(AdapterError, match=named):
            attempt()
    assert stand.published() == before


def test_rfc2136_concurrent_writers_from_the_same_read_one_wins(rfc2136_stand: Rfc2136Stand) -> None:
    """The prerequisite and the change are one step at the server (BIND per zone, PowerDNS under
    one lock per process and one database transaction): of writers racing from the same read,
    exactly one lands and the records are its own."""
    stand = rfc2136_stand
    reconcile(stand.adapter(), desired(stand.domain))
    shared = stand.adapter().read()
    writers = 6
    start = threading.Barrier(writers)
    won: list[int] = []
    lost: list[int] = []

    def write(i: int) -> None:
        adapter = stand.adapter()
        plan = adapter.plan(shared, desired(stand.domain, f"region-{i}", 2, (f"203.0.113.{i + 1}",), by=f"region-{i}"))
        start.wait(timeout=10)
        try:
            adapter.apply(plan)
            won.append(i)
        except LostRace:
            lost.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(won) == 1 and sorted(won + lost) == list(range(writers)), (won, lost)
    now = stand.published()
    assert now.addresses == (f"203.0.113.{won[0] + 1}",)
    assert now.marker is not None and f"primary=region-{won[0]} " in now.marker


def test_rfc2136_each_change_raises_the_soa_serial(rfc2136_stand: Rfc2136Stand) -> None:
    """Secondaries fetch the zone only when its serial rises (RFC 2136 §3.7): BIND adds one,
    PowerDNS's default SOA-EDIT-DNSUPDATE moves to YYYYMMDDnn or adds one. No change, no rise."""
    stand = rfc2136_stand
    adapter = stand.adapter()
    start = stand.soa_serial()
    reconcile(adapter, desired(stand.domain))
    first = stand.soa_serial()
    assert first > start
    reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST))
    second = stand.soa_serial()
    assert second > first
    assert reconcile(adapter, desired(stand.domain, WEST, 2, WEST_ADDRS, by=WEST)) == ()
    assert stand.soa_serial() == second


def test_pdns_an_edit_behind_its_cache_is_served_late_but_still_fences(contract_pdns: tuple[Pdns, DnsTcpRelay]) -> None:
    """PowerDNS drops the cached answers for the names an UPDATE changes, not when pdnsutil or SQL
    edit the database: such an edit is served only when the cache expires (20 s by default).
    A coordinator reading the stale marker still overwrites nothing: the prerequisite is checked
    against the database. `pdns_control purge` serves the edit at once."""
    pdns, relay = contract_pdns
    stand = Rfc2136Stand(pdns, relay)
    adapter = stand.adapter()
    reconcile(adapter, desired(stand.domain))
    stale = adapter.read()  # now in the caches

    theirs = f"epoch=2 primary={WEST} by={WEST} at=1700000200"
    marker = marker_name(stand.domain)
    pdns.util("replace-rrset", ZONE, marker.removesuffix("." + ZONE), "TXT", "30", f'"{theirs}"')
    pdns.util("replace-rrset", ZONE, stand.domain.removesuffix("." + ZONE), "A", "30", *WEST_ADDRS)
    pdns.util("delete-rrset", ZONE, stand.domain.removesuffix("." + ZONE), "AAAA")
    assert adapter.read() == stale  # the caches still answer (they hold 20 s; this takes well under one)

    with pytest.raises(LostRace):
        adapter.apply(adapter.plan(stale, desired(stand.domain, EAST, 2, ("192.0.2.77",), at=1_700_000_201)))
    assert pdns.stored(marker, "TXT") == [f'"{theirs}"']
    assert pdns.stored(stand.domain, "A") == sorted(WEST_ADDRS) and pdns.stored(stand.domain, "AAAA") == []

    pdns.control("purge", ZONE + "$")
    now = adapter.read()
    assert now.marker_text == theirs and now.addresses == tuple(sorted(WEST_ADDRS))


# The key may change the managed name's addresses and its marker, nothing else: the script of
# docs/dns-servers.md, word for word.
PDNS_LUA_POLICY = """
local allowed = {
  ["api.example.com."] = {[pdns.A] = true, [pdns.AAAA] = true},
  ["_failover.api.example.com."] = {[pdns.TXT] = true},
}
function updatepolicy(request)
  if not request:getTsigName():equal("failover.") then return false end
  local types = allowed[request:getQName():toString()]
  return types ~= nil and types[request:getQType()] == true
end
"""


def test_pdns_lua_update_policy_refuses_silently_and_verify_catches_it(tmp_path: Path) -> None:
    """With lua-dnsupdate-policy-script PowerDNS asks the script record by record, skips what it
    refuses and still answers NOERROR (RFC 2136 §3.3.2 allows that), and no longer applies
    TSIG-ALLOW-DNSUPDATE. A change that did not happen is caught by verify, which failover runs
    after every apply."""
    script = tmp_path / "policy.lua"
    script.write_text(PDNS_LUA_POLICY)
    pdns = start_pdns(
        tmp_path / "pdns", zone=ZONE, extra_config=f"lua-dnsupdate-policy-script={script}\n", key_name="failover."
    )
    try:
        key = (pdns.key_name, pdns.algorithm, pdns.key_secret)
        managed = "api.example.com"
        reconcile(Rfc2136Adapter(managed, pdns.host, pdns.port, pdns.zone, 30, key), desired(managed))
        stored = pdns.stored(managed, "A"), pdns.stored(marker_name(managed), "TXT")
        assert stored[0] == sorted(EAST_ADDRS[:2]) and len(stored[1]) == 1

        for outsider in (
            Rfc2136Adapter("other.example.com", pdns.host, pdns.port, pdns.zone, 30, key),  # a name not granted
            Rfc2136Adapter(managed, pdns.host, pdns.port, pdns.zone, 30),  # unsigned: the script refuses it
        ):
            want = desired(outsider.domain, WEST, 2, WEST_ADDRS, by=WEST)
            outsider.apply(outsider.plan(outsider.read(), want))  # answered NOERROR, nothing written
            with pytest.raises(VerifyError):
                outsider.verify(want)
        assert (pdns.stored(managed, "A"), pdns.stored(marker_name(managed), "TXT")) == stored
        assert pdns.stored("other.example.com", "A") == []
    finally:
        pdns.stop()
